"""Kaldi / ESPnet data directories: wav.scp, text, [segments], [utt2spk], [utt2lang], and back."""

from __future__ import annotations

import hashlib
import math
import re
import subprocess
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from hlora_cli.data.importers import ImportResult, read_lines
from hlora_cli.data.langs import language_code
from hlora_cli.data.manifest import Rejected, Utterance
from hlora_cli.errors import HloraError
from hlora_cli.files import atomic_write, check_parent, safe_stem


def read_table_lines(path: Path, min_fields: int, what: str) -> dict[str, tuple[int, list[str]]]:
    """`key value...` lines as key -> (line number, values); a short line or a repeated key is an
    error naming file and line."""
    table: dict[str, tuple[int, list[str]]] = {}
    for n, line in enumerate(read_lines(path), 1):
        if not line.strip():
            continue
        parts = line.split()
        if len(parts) < min_fields:
            raise HloraError(f"{path}:{n}: expected '{what}'")
        if parts[0] in table:
            raise HloraError(f"{path}:{n}: '{parts[0]}' appears twice")
        table[parts[0]] = (n, parts[1:])
    return table


def read_table(path: Path, min_fields: int, what: str) -> dict[str, list[str]]:
    """`key value...` lines; a short line or a repeated key is an error naming file and line."""
    return {key: values for key, (_, values) in read_table_lines(path, min_fields, what).items()}


def _text_table(path: Path) -> dict[str, str]:
    table = {}
    for n, line in enumerate(read_lines(path), 1):
        if not line.strip():
            continue
        key, *text = line.split(maxsplit=1)  # Kaldi separates the key by a space or a tab
        if key in table:
            raise HloraError(f"{path}:{n}: '{key}' appears twice")
        table[key] = text[0].strip() if text else ""
    return table


def _read_segments(path: Path) -> dict[str, tuple[str, float, float | None]]:
    """utt-id -> (recording-id, start, end or None for Kaldi's -1: to the recording's end)."""
    segments = {}
    for utt_id, (n, (rec, start, end, *_)) in read_table_lines(
        path, 4, "<utt-id> <recording-id> <start> <end>"
    ).items():
        try:
            start_s, end_s = float(start), float(end)
            if not (math.isfinite(start_s) and math.isfinite(end_s)):
                raise ValueError
        except ValueError:
            raise HloraError(f"{path}:{n}: '{utt_id}' has non-numeric times {start} {end}") from None
        segments[utt_id] = (rec, start_s, None if end_s < 0 else end_s)
    return segments


class Unusable(Exception):
    """A wav.scp entry this importer cannot turn into audio; its utterances are rejected with the
    message as reason."""


# `rec foo.ark:1234` or `rec ark:foo.ark:1234`: audio inside a Kaldi archive, which we do not read
_ARK = re.compile(r"^(?:ark,?[a-z,]*:.*|.*\.ark:\d+)$")


def _check_wav_entry(rec: str, fields: list[str], where: str, allow_pipes: bool) -> None:
    """Refuse, before any work, an entry that no run could use: a pipe without --allow-pipes, a
    path followed by more fields."""
    entry = " ".join(fields)
    if entry.endswith("|"):
        if not allow_pipes:
            raise HloraError(
                f"{where}: recording '{rec}' is a command pipe ('{entry}'); pass --allow-pipes to run it, "
                "or convert the audio to files first"
            )
    elif len(fields) != 1:
        raise HloraError(f"{where}: recording '{rec}' has extra fields after the path (a pipe must end with '|')")


def pipe_cache_path(cache: Path, rec: str, command: str) -> Path:
    """Where a pipe's audio is kept: a file named by the recording id (made safe: no `/`, no
    leading dot, so it stays inside the cache folder) and a hash of the command, so a cached file
    is reused only for the same command and a changed wav.scp runs its pipe again."""
    digest = hashlib.sha256(command.encode("utf-8")).hexdigest()[:16]
    return cache / f"{safe_stem(rec)}-{digest}.wav"


def _wav_entry(rec: str, fields: list[str], where: str, audio_root: Path, cache: Path) -> str:
    """The audio path of a checked wav.scp entry (a pipe runs once, into `cache`); Unusable for a
    pipe that fails and for audio inside a Kaldi archive."""
    entry = " ".join(fields)
    if entry.endswith("|"):
        out = pipe_cache_path(cache, rec, entry)
        if not out.exists():
            wav = subprocess.run(entry[:-1], shell=True, capture_output=True, check=False)
            if wav.returncode != 0 or not wav.stdout:
                problem = " ".join(wav.stderr.decode(errors="replace").split())[:200]
                raise Unusable(
                    f"pipe failed: {where}: recording '{rec}': "
                    + (problem or f"exit status {wav.returncode}, no audio on its output")
                )
            atomic_write(out, lambda p: p.write_bytes(wav.stdout))
        return str(out)
    if _ARK.match(fields[0]):
        raise Unusable(
            f"Kaldi ark entry not supported: {where}: recording '{rec}' is '{fields[0]}', audio inside an "
            "archive; write it out as wav files (e.g. wav-copy) and list those"
        )
    path = Path(fields[0])
    return str(path if path.is_absolute() else (audio_root / path))


def import_kaldi(
    data_dir: Path,
    lang: str | None = None,
    lang_from_id: bool = False,
    allow_pipes: bool = False,
    pipe_cache: Path | None = None,
    audio_root: Path | None = None,
) -> ImportResult:
    """Rows from a Kaldi data dir. The language comes from utt2lang, else --lang, else (with
    `lang_from_id`) the id's prefix before the first '_' or '-'. Recordings that cannot be read
    (a failing pipe, an ark entry) have their utterances rejected, with the line named. Relative
    paths start from `audio_root` (default: the data dir)."""
    if lang is not None:
        lang = language_code(lang, "--lang")
    if not data_dir.is_dir():
        raise HloraError(f"{data_dir}: not a directory; a Kaldi data dir holds wav.scp and text")
    for name in ("wav.scp", "text"):
        if not (data_dir / name).exists():
            raise HloraError(f"{data_dir / name}: missing; a Kaldi data dir needs wav.scp and text")
    wav_scp = data_dir / "wav.scp"
    recordings = read_table_lines(wav_scp, 2, "<recording-id> <path> (or <recording-id> <command> |)")
    texts = _text_table(data_dir / "text")
    segments = _read_segments(data_dir / "segments") if (data_dir / "segments").exists() else None
    spk = read_table(data_dir / "utt2spk", 2, "<utt-id> <speaker>") if (data_dir / "utt2spk").exists() else {}
    langs: dict[str, str] = {}
    if (data_dir / "utt2lang").exists():
        for utt_id, (n, values) in read_table_lines(data_dir / "utt2lang", 2, "<utt-id> <lang>").items():
            langs[utt_id] = language_code(values[0], f"{data_dir / 'utt2lang'}:{n}")
    for rec, (n, fields) in recordings.items():  # before any pipe runs, so no partial import happens
        _check_wav_entry(rec, fields, f"{wav_scp}:{n}", allow_pipes)
    cache = pipe_cache or data_dir / "pipe_audio"
    resolved: dict[str, str | Unusable] = {}

    def audio_of(rec: str) -> str | Unusable:
        """The recording's audio path, or why it has none (each pipe runs once)."""
        if rec not in resolved:
            n, fields = recordings[rec]
            try:
                resolved[rec] = _wav_entry(rec, fields, f"{wav_scp}:{n}", audio_root or data_dir, cache)
            except Unusable as e:
                resolved[rec] = e
        return resolved[rec]

    result = ImportResult()
    for utt_id, text in texts.items():
        row = {"id": utt_id, "text": text}
        if segments is not None:
            if utt_id not in segments:
                result.rejected.append(Rejected(row, "no entry in segments"))
                continue
            rec, start_s, end_s = segments[utt_id]
        else:
            rec, start_s, end_s = utt_id, None, None
        if rec not in recordings:
            result.rejected.append(Rejected(row, f"recording not in wav.scp: {rec}"))
            continue
        code = langs.get(utt_id, lang) if langs else lang
        if code is None and lang_from_id:
            code = utt_id.replace("-", "_").split("_")[0]
        if not code:
            result.rejected.append(Rejected(row, "no language (add utt2lang, --lang or --lang-from-id)"))
            continue
        audio = audio_of(rec)
        if isinstance(audio, Unusable):
            result.rejected.append(Rejected(row, str(audio)))
            continue
        speaker = spk.get(utt_id, [None])[0]
        result.utts.append(
            Utterance(utt_id, audio, code, text, start_s, end_s, speaker=None if speaker == utt_id else speaker)
        )
    return result


# The files export_kaldi writes. A new export removes those of an earlier export that it does not
# write (a stale `segments` would make a re-import find no recordings); other files are left alone.
KALDI_FILES = ("wav.scp", "text", "utt2spk", "spk2utt", "utt2lang", "utt2dur", "segments")
# Kaldi files made from a data dir by other tools: kept, but reported, since they may no longer match.
KALDI_DERIVED = (
    "feats.scp",
    "cmvn.scp",
    "reco2dur",
    "utt2num_frames",
    "spk2gender",
    "utt2uniq",
    "reco2file_and_channel",
    "vad.scp",
    "frame_shift",
)


@dataclass
class KaldiExport:
    written: list[Path]
    removed: list[Path]  # files of an earlier export that this one does not write
    unmatched: list[Path]  # other Kaldi files in the directory, left as they were


def check_kaldi_dir(out_dir: Path) -> Path:
    """A directory export_kaldi may write into: an existing directory or one that can be made."""
    out_dir = Path(out_dir)
    if out_dir.exists() and not out_dir.is_dir():
        raise HloraError(f"{out_dir}: is a file, not a directory; give a directory for the Kaldi data")
    check_parent(out_dir, "Kaldi directory")
    return out_dir


def _check_exportable(utts: list[Utterance]) -> None:
    """Kaldi tables split lines at whitespace and need unique keys: refuse what would not read back."""
    seen: set[str] = set()
    for u in utts:
        if u.id in seen:
            raise HloraError(f"utterance id '{u.id}' appears twice; a Kaldi data dir needs unique ids")
        seen.add(u.id)
        if any(c.isspace() for c in u.id):
            raise HloraError(f"utterance id {u.id!r} contains whitespace, which a Kaldi table cannot hold")
        if u.speaker is not None and (not u.speaker or any(c.isspace() for c in u.speaker)):
            raise HloraError(
                f"utterance '{u.id}': speaker {u.speaker!r} is empty or contains whitespace, which utt2spk cannot hold"
            )
        if any(c.isspace() for c in str(Path(u.audio).resolve())):
            raise HloraError(
                f"utterance '{u.id}': audio path {u.audio!r} contains whitespace, which wav.scp cannot hold; "
                "move or link the audio to a path without spaces"
            )


def recording_ids(utts: list[Utterance], segmented: bool) -> dict[str, str]:
    """audio path -> recording id: the utterance id where each recording is one utterance, else
    the file's stem, made unique."""
    if not segmented:
        return {u.audio: u.id for u in utts}
    rec_of: dict[str, str] = {}
    taken: set[str] = set()
    for u in sorted(utts, key=lambda u: u.id):
        if u.audio not in rec_of:
            stem, rec, n = Path(u.audio).stem, Path(u.audio).stem, 1
            while rec in taken:
                rec, n = f"{stem}-{n}", n + 1
            rec_of[u.audio] = rec
            taken.add(rec)
    return rec_of


def _one_line(text: str) -> str:
    return " ".join(text.split()) if "\n" in text or "\r" in text else text


def export_kaldi(utts: list[Utterance], out_dir: Path) -> KaldiExport:
    """Write wav.scp, text, utt2spk, spk2utt, utt2lang, utt2dur (when known) and segments (when any
    utterance is a segment, or recordings are shared), sorted as Kaldi requires, and remove those
    of them that an earlier export left and this one does not write. Utterances without a speaker
    are their own speaker, Kaldi's convention."""
    out_dir = check_kaldi_dir(out_dir)
    _check_exportable(utts)
    segmented = any(u.start is not None or u.end is not None for u in utts) or len({u.audio for u in utts}) < len(utts)
    rec_of = recording_ids(utts, segmented)
    ordered = sorted(utts, key=lambda u: u.id)
    spk2utt: dict[str, list[str]] = {}
    for u in ordered:
        spk2utt.setdefault(u.speaker or u.id, []).append(u.id)
    files: dict[str, list[str]] = {
        "wav.scp": [f"{rec} {Path(audio).resolve()}" for audio, rec in sorted(rec_of.items(), key=lambda x: x[1])],
        "text": [f"{u.id} {_one_line(u.text)}" for u in ordered],
        "utt2spk": [f"{u.id} {u.speaker or u.id}" for u in ordered],
        "spk2utt": [f"{s} {' '.join(ids)}" for s, ids in sorted(spk2utt.items())],
        "utt2lang": [f"{u.id} {u.lang}" for u in ordered],
    }
    if all(u.duration is not None for u in ordered):
        files["utt2dur"] = [f"{u.id} {u.duration:g}" for u in ordered]
    if segmented:
        files["segments"] = [
            f"{u.id} {rec_of[u.audio]} {u.start or 0.0:g} {u.end if u.end is not None else -1:g}" for u in ordered
        ]
    written = []
    for name, lines in files.items():
        text = "".join(line + "\n" for line in lines)
        path = out_dir / name
        atomic_write(path, _writer(text))
        written.append(path)
    removed = []
    for name in KALDI_FILES:
        path = out_dir / name
        if name not in files and path.is_file():
            path.unlink()
            removed.append(path)
    unmatched = [out_dir / name for name in KALDI_DERIVED if (out_dir / name).exists()]
    return KaldiExport(written, removed, unmatched)


def _writer(text: str) -> Callable[[Path], None]:
    return lambda p: p.write_text(text, encoding="utf-8")
