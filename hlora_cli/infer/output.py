"""Decoding output: JSONL (id, lang, lang_probs, text, words) and a Kaldi `text` file, atomically."""

from __future__ import annotations

import json
import os
from pathlib import Path

from hlora_cli.errors import HloraError
from hlora_cli.files import atomic_write, check_output, json_text
from hlora_cli.infer.results import Report, Result


def result_line(r: Result) -> str:
    """One result as its JSONL line (no newline)."""
    row = {"id": r.id, "lang": r.lang, "lang_probs": r.lang_probs, "text": r.text}
    if r.words:
        row["words"] = [{"word": w, "start": round(a, 3), "end": round(b, 3)} for w, a, b in r.words]
    return json_text(row)


def result_from_line(line: str) -> Result:
    row = json.loads(line)
    words = [(w["word"], w["start"], w["end"]) for w in row.get("words", [])]
    return Result(row["id"], row["lang"], row["lang_probs"], row["text"], words, 0.0)


def write_results(results: list[Result], out: Path) -> list[Path]:
    rows = [result_line(r) for r in sorted(results, key=lambda r: r.id)]
    jsonl = "".join(line + "\n" for line in rows)
    atomic_write(out, lambda p: p.write_text(jsonl, encoding="utf-8"))
    kaldi = kaldi_path(out)
    text = "".join(f"{r.id} {r.text}\n" for r in sorted(results, key=lambda r: r.id))
    atomic_write(kaldi, lambda p: p.write_text(text, encoding="utf-8"))
    return [out, kaldi]


def kaldi_path(out: Path) -> Path:
    """The Kaldi text beside OUT: OUT.text, never OUT itself (an OUT named x.text gives x.kaldi.text)."""
    return out.with_suffix(".text") if out.suffix != ".text" else out.with_suffix(".kaldi.text")


def partial_path(out: Path) -> Path:
    """Where a decode appends its results as they finish: OUT.partial, made into OUT at the end."""
    return out.with_name(out.name + ".partial")


def check_no_partial(out: Path) -> None:
    """A decode without --resume must not overwrite an interrupted one's results."""
    if partial_path(out).exists():
        raise HloraError(
            f"{partial_path(out)}: holds the results of an interrupted decode of {out}; continue it with --resume, "
            "or remove the file to start again"
        )


class PartialOutput:
    """OUT.partial: results appended chunk by chunk, each chunk flushed to disk, so a killed decode
    leaves every finished result readable and `--resume` continues after them. The file is made
    at the first chunk's results (an error before them leaves nothing behind)."""

    # what must not change between an interrupted decode and its resumption (device, dtype may)
    SAME = ("inputs", "model", "onnx", "whisper", "mode", "routing", "decoder", "lid_model")

    def __init__(self, out: Path, resume: bool, settings: dict | None = None) -> None:
        self.path = partial_path(out)
        self.settings_path = self.path.with_name(self.path.name + ".json")
        self.settings = settings or {}
        self.done: list[Result] = []
        if resume:
            self._check_settings(out)
            self.done = self._read_done(out)
        else:
            check_no_partial(out)

    def _check_settings(self, out: Path) -> None:
        """The interrupted (or finished) decode's settings, from OUT.partial.json (or OUT.meta.json),
        against this one's: a resumed output must come from one model decoding one way."""
        source = self.settings_path if self.path.exists() else meta_path(out)
        if not source.exists():
            return
        try:
            before = json.loads(source.read_text(encoding="utf-8"))
        except json.JSONDecodeError as e:
            raise HloraError(f"{source}: not valid JSON ({e}); cannot check what the earlier decode used") from e
        for key in self.SAME:
            a, b = before.get(key), self.settings.get(key)
            if a is not None and b is not None and str(a) != str(b):
                raise HloraError(
                    f"{source}: the earlier decode of {out} used {key} {a}, this one {b}: resume with the same "
                    f"settings, or decode into another -o"
                )

    def _read_done(self, out: Path) -> list[Result]:
        """The results already written: OUT.partial's complete lines, else a finished OUT's. A last
        line the kill cut short is cut off the file (in place: nothing before it is rewritten)."""
        source = self.path if self.path.exists() else out
        if not source.exists():
            return []
        data = source.read_bytes()
        complete = data[: data.rfind(b"\n") + 1]
        if source == self.path and len(complete) < len(data):
            os.truncate(self.path, len(complete))
        done = []
        for n, line in enumerate(complete.split(b"\n")[:-1], 1):  # "\n" only: texts may hold U+2028
            try:
                done.append(result_from_line(line.decode("utf-8")))
            except (UnicodeDecodeError, json.JSONDecodeError, KeyError, TypeError) as e:
                raise HloraError(f"{source}:{n}: not a decoding result line ({e}); cannot resume from it") from e
        return done

    @property
    def done_ids(self) -> set[str]:
        return {r.id for r in self.done}

    def append(self, results: list[Result]) -> None:
        if not self.path.exists():  # the first results: the earlier ones (a finished OUT's) go first
            self.path.parent.mkdir(parents=True, exist_ok=True)
            settings = json_text(self.settings, indent=1) + "\n"
            atomic_write(self.settings_path, lambda p: p.write_text(settings, encoding="utf-8"))
            text = "".join(result_line(r) + "\n" for r in self.done)
            atomic_write(self.path, lambda p: p.write_text(text, encoding="utf-8"))
        with open(self.path, "a", encoding="utf-8") as f:
            f.write("".join(result_line(r) + "\n" for r in results))
            f.flush()
            os.fsync(f.fileno())

    def finish(self, out: Path) -> list[Result] | None:
        """Every result (earlier and this run's), sorted into OUT and OUT.text; OUT.partial removed.
        None when this run added nothing to a finished OUT (then nothing is rewritten)."""
        if not self.path.exists():
            if self.done and out.exists():
                return None
            self.append([])
        with open(self.path, encoding="utf-8", newline="\n") as f:
            results = [result_from_line(line) for line in f]
        write_results(results, out)
        self.path.unlink()
        self.settings_path.unlink(missing_ok=True)
        return results


def meta_path(out: Path) -> Path:
    return out.with_suffix(".meta.json")


def check_outputs(out: Path, inputs: list[str | Path], meta: bool = True) -> list[Path]:
    """OUT and the files derived from it: none a directory, an input, or another of them."""
    partial = partial_path(out)
    paths = [out, kaldi_path(out), partial, partial.with_name(partial.name + ".json")]
    paths += [meta_path(out)] if meta else []
    if len({p.resolve() for p in paths}) != len(paths):
        raise HloraError(f"{out}: its derived files {', '.join(map(str, paths[1:]))} would collide with it")
    for p in paths:
        check_output(p, inputs)
    return paths


def write_meta(report: Report, out: Path, system: dict) -> None:
    """OUT.meta.json: what decoded and how fast (read by `hlora score --systems`)."""
    meta = {
        **system,
        "utterances": len(report.results),
        "skipped": len(report.skipped),
        "audio_seconds": round(report.audio_seconds, 3),
        "wall_seconds": round(report.wall_seconds, 3),
        "rtf": round(report.rtf, 5),
    }
    text = json_text(meta, indent=1) + "\n"
    atomic_write(meta_path(out), lambda p: p.write_text(text, encoding="utf-8"))
