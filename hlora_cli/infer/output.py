"""Decoding output: JSONL (id, lang, lang_probs, text, words) and a Kaldi `text` file, atomically."""

from __future__ import annotations

from pathlib import Path

from hlora_cli.errors import HloraError
from hlora_cli.files import atomic_write, check_output, json_text
from hlora_cli.infer.runner import Report, Result


def write_results(results: list[Result], out: Path) -> list[Path]:
    rows = []
    for r in sorted(results, key=lambda r: r.id):
        row = {"id": r.id, "lang": r.lang, "lang_probs": r.lang_probs, "text": r.text}
        if r.words:
            row["words"] = [{"word": w, "start": round(a, 3), "end": round(b, 3)} for w, a, b in r.words]
        rows.append(json_text(row))
    jsonl = "".join(line + "\n" for line in rows)
    atomic_write(out, lambda p: p.write_text(jsonl, encoding="utf-8"))
    kaldi = kaldi_path(out)
    text = "".join(f"{r.id} {r.text}\n" for r in sorted(results, key=lambda r: r.id))
    atomic_write(kaldi, lambda p: p.write_text(text, encoding="utf-8"))
    return [out, kaldi]


def kaldi_path(out: Path) -> Path:
    """The Kaldi text beside OUT: OUT.text, never OUT itself (an OUT named x.text gives x.kaldi.text)."""
    return out.with_suffix(".text") if out.suffix != ".text" else out.with_suffix(".kaldi.text")


def meta_path(out: Path) -> Path:
    return out.with_suffix(".meta.json")


def check_outputs(out: Path, inputs: list[str | Path], meta: bool = True) -> list[Path]:
    """OUT and the files derived from it: none a directory, an input, or another of them."""
    paths = [out, kaldi_path(out)] + ([meta_path(out)] if meta else [])
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
