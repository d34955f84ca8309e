"""The manifest: JSONL, one utterance a line. One reader, one writer and one validator for the
whole project.

    {"id": "utt1", "audio": "clips/utt1.wav", "lang": "en", "text": "Hello."}
    optional: "start"/"end" (seconds: a segment of a longer recording, read virtually),
              "duration", "text_norm", "speaker"

Audio paths are absolute or relative to the manifest's folder."""

from __future__ import annotations

import json
import math
import os
import re
from collections.abc import Iterable
from dataclasses import asdict, dataclass, fields, replace
from pathlib import Path

from hlora_cli.data.langs import language_code
from hlora_cli.errors import HloraError
from hlora_cli.files import atomic_write

REQUIRED = ("id", "audio", "lang", "text")
_WHITESPACE = re.compile(r"\s")  # what str.isspace() calls whitespace, found without a Python loop
OPTIONAL_TEXT = ("text_norm", "speaker")


@dataclass(slots=True)  # a million of them in memory: no per-instance dict
class Utterance:
    id: str
    audio: str  # absolute path once read (resolved against the manifest's folder)
    lang: str
    text: str
    start: float | None = None
    end: float | None = None
    duration: float | None = None
    text_norm: str | None = None
    speaker: str | None = None

    def to_json(self, base: Path | None = None) -> dict:
        d = {k: v for k, v in asdict(self).items() if v is not None}
        if base is not None:
            d["audio"] = _relative(Path(self.audio), base)
        return d


_FIELDS = {f.name for f in fields(Utterance)}


def _relative(path: Path, base: Path) -> str:
    """`path` relative to `base` when it lies below it, absolute otherwise."""
    try:
        return str(path.resolve().relative_to(base.resolve()))
    except ValueError:
        return str(path.resolve())


def id_problem(utt_id: str) -> str | None:
    """Why `utt_id` cannot be an utterance id (empty, or with whitespace, which would split a
    Kaldi line), or None."""
    if not utt_id:
        return "id is empty"
    if _WHITESPACE.search(utt_id):
        return f"id {utt_id!r} contains whitespace"
    return None


class _BadLine(Exception):
    """What is wrong with one line; the reader adds the file and line number."""


def _number(d: dict, key: str) -> float:
    value = d[key]
    try:
        if isinstance(value, bool):
            raise ValueError
        number = float(value)
    except (TypeError, ValueError):
        raise _BadLine(f"{key} must be a number of seconds, got {json.dumps(value)}") from None
    if not math.isfinite(number):
        raise _BadLine(f"{key} must be a finite number of seconds, got {json.dumps(value)}")
    return number


def parse_line(line: str, base: str) -> Utterance:
    """One manifest line as an Utterance, its audio path resolved against `base`; _BadLine says
    what is wrong with it."""
    try:
        d = json.loads(line)
    except json.JSONDecodeError as e:
        raise _BadLine(f"not valid JSON ({e.msg})") from None
    return _utterance(d, base)


def _utterance(d: object, base: str) -> Utterance:
    if not isinstance(d, dict):
        raise _BadLine("expected a JSON object")
    missing = [k for k in REQUIRED if k not in d]
    if missing:
        raise _BadLine(f"missing field(s) {', '.join(missing)}")
    if not d.keys() <= _FIELDS:
        raise _BadLine(f"unknown field(s) {', '.join(sorted(set(d) - _FIELDS))}")
    for key in REQUIRED + OPTIONAL_TEXT:
        if (key in REQUIRED or d.get(key) is not None) and not isinstance(d[key], str):
            raise _BadLine(f"{key} must be a string, got {json.dumps(d[key])}")
    problem = id_problem(d["id"])
    if problem:
        raise _BadLine(problem)
    if not d["audio"].strip():
        raise _BadLine("audio is empty")
    for key in ("start", "end", "duration"):
        if d.get(key) is not None:
            d[key] = _number(d, key)
    try:
        d["lang"] = language_code(d["lang"])
    except HloraError as e:
        raise _BadLine(str(e)) from None
    d["audio"] = _resolve(d["audio"], base)
    return Utterance(**d)


def _resolve(audio: str, base: str) -> str:
    """`audio` against the manifest's folder, as `str(Path(base) / audio)` gives it (os.path is
    several times faster, which a million-line manifest notices; Path only where it would tidy)."""
    if "//" in audio or "./" in audio or audio.endswith(("/", "/.")) or audio == ".":
        return str(Path(base) / audio)
    return audio if os.path.isabs(audio) else os.path.join(base, audio)


def read_manifest(path: str | Path) -> list[Utterance]:
    """All utterances of a JSONL manifest; a malformed line is an error naming file and line."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8-sig")  # a byte-order mark is not JSON
    except FileNotFoundError as e:
        raise HloraError(f"{path}: manifest not found") from e
    except UnicodeDecodeError as e:
        raise HloraError(f"{path}: not UTF-8 text ({e.reason})") from e
    base = str(path.resolve().parent)
    # "\n" only: json.dumps(ensure_ascii=False) leaves U+2028 and the like raw inside strings,
    # and str.splitlines() would break a line there
    lines = [line for line in text.split("\n") if line and not line.isspace()]
    objects = _parse_all(lines)
    utts = []
    for i, line in enumerate(lines):
        try:
            utts.append(parse_line(line, base) if objects is None else _utterance(objects[i], base))
        except _BadLine as e:
            raise HloraError(f"{path}:{_line_number(text, i)}: {e}") from None
    return utts


def _parse_all(lines: list[str]) -> list | None:
    """Every line's JSON value in one call (a third faster than a call per line, which a million
    lines notice), or None where that cannot stand for parsing them one by one: a line that is not
    `{...}` or a value count that differs from the line count."""
    if not all(line[0] == "{" and line.rstrip()[-1] == "}" for line in lines):
        return None
    try:
        objects = json.loads("[" + ",".join(lines) + "]")
    except json.JSONDecodeError:
        return None
    return objects if len(objects) == len(lines) else None


def _line_number(text: str, i: int) -> int:
    """The line number of the `i`-th (from 0) non-blank line of `text`."""
    seen = -1
    for n, line in enumerate(text.split("\n"), 1):
        if line and not line.isspace():
            seen += 1
            if seen == i:
                return n
    raise AssertionError(i)


def write_manifest(path: str | Path, utts: Iterable[Utterance]) -> Path:
    """Write atomically; audio paths below the manifest's folder are written relative to it."""
    path = Path(path)
    base = path.resolve().parent
    lines = [json.dumps(u.to_json(base), ensure_ascii=False) for u in utts]
    text = "\n".join(lines) + ("\n" if lines else "")
    atomic_write(path, lambda p: p.write_text(text, encoding="utf-8"))
    return path


@dataclass
class Rejected:
    utt: Utterance | dict
    reason: str

    def to_json(self) -> dict:
        u = self.utt.to_json() if isinstance(self.utt, Utterance) else dict(self.utt)
        return {**u, "reason": self.reason}


def validate(
    utts: list[Utterance],
    languages: Iterable[str] | None = None,
    max_duration: float = 30.0,
    check_audio: bool = True,
) -> tuple[list[Utterance], list[Rejected]]:
    """Split utterances into accepted and rejected (with reasons): ids that are empty or hold
    whitespace, empty text, duplicate ids, codes that are no language, languages outside
    `languages`, missing, unreadable or truncated audio, duration <= 0 or > max_duration.
    Language codes are stored in their checked form (`EN` -> `en`); durations are filled in from
    the audio headers."""
    from hlora_cli.data.audio import AudioInfo, audio_info
    from hlora_cli.data.langs import resolve_language

    known = {language_code(x, "languages") for x in languages} if languages is not None else None
    seen: set[str] = set()
    infos: dict[str, AudioInfo] = {}
    ok, rejected = [], []

    def reject(u: Utterance, reason: str) -> None:
        rejected.append(Rejected(u, reason))

    for u in utts:
        problem = id_problem(u.id)
        if problem:
            reject(u, f"bad id: {problem}")
            continue
        if not u.text.strip():  # before the duplicate check: an empty row is reported as empty
            reject(u, "empty text")
            continue
        if u.id in seen:
            reject(u, "duplicate id")
            continue
        seen.add(u.id)
        try:
            u = replace(u, lang=language_code(u.lang))
        except HloraError:
            reject(u, f"not a language code: {u.lang}")
            continue
        if known is not None and resolve_language(u.lang, known) is None:
            reject(u, f"unknown language: {u.lang}")
            continue
        if check_audio:
            try:
                if u.audio not in infos:
                    infos[u.audio] = audio_info(u.audio)
            except HloraError as e:
                reject(u, f"unreadable audio: {e}")
                continue
            info = infos[u.audio]
            total = info.duration
            if info.truncated and u.end is None:  # the transcript is of the whole, the file holds a part
                header = info.header_frames / info.sample_rate
                reject(u, f"truncated audio: the header says {header:.2f} s, the file holds {total:.2f} s")
                continue
            if u.end is not None and u.end > total + 0.01:
                reject(u, f"segment beyond the file's end: {u.end:.2f} s > {total:.2f} s")
                continue
            u = replace(u, duration=round((u.end if u.end is not None else total) - (u.start or 0.0), 3))
        elif u.duration is None and u.end is not None:
            u = replace(u, duration=round(u.end - (u.start or 0.0), 3))
        if u.duration is not None and u.duration <= 0:
            reject(u, "duration <= 0")
            continue
        if u.duration is not None and u.duration > max_duration:
            reject(u, f"over the maximum duration: {u.duration:.1f} s > {max_duration:g} s")
            continue
        ok.append(u)
    return ok, rejected


def write_rejected(path: str | Path, rejected: list[Rejected]) -> Path:
    path = Path(path)
    text = "".join(json.dumps(r.to_json(), ensure_ascii=False) + "\n" for r in rejected)
    atomic_write(path, lambda p: p.write_text(text, encoding="utf-8"))
    return path
