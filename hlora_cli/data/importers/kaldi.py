"""Kaldi / ESPnet data directories: wav.scp, text, [segments], [utt2spk], [utt2lang], and back."""

from __future__ import annotations

import subprocess
from collections.abc import Callable
from pathlib import Path

from hlora_cli.data.importers import ImportResult
from hlora_cli.data.manifest import Rejected, Utterance
from hlora_cli.errors import HloraError
from hlora_cli.files import atomic_write


def read_table(path: Path, min_fields: int, what: str) -> dict[str, list[str]]:
    """`key value...` lines; a short line or a repeated key is an error naming file and line."""
    table: dict[str, list[str]] = {}
    for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip():
            continue
        parts = line.split()
        if len(parts) < min_fields:
            raise HloraError(f"{path}:{n}: expected '{what}'")
        if parts[0] in table:
            raise HloraError(f"{path}:{n}: '{parts[0]}' appears twice")
        table[parts[0]] = parts[1:]
    return table


def _text_table(path: Path) -> dict[str, str]:
    table = {}
    for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip():
            continue
        key, _, text = line.partition(" ")
        if key in table:
            raise HloraError(f"{path}:{n}: '{key}' appears twice")
        table[key] = text.strip()
    return table


def _wav_entry(rec: str, fields: list[str], where: Path, data_dir: Path, allow_pipes: bool, cache: Path) -> str:
    entry = " ".join(fields)
    if entry.endswith("|"):
        if not allow_pipes:
            raise HloraError(
                f"{where}: recording '{rec}' is a command pipe ('{entry}'); pass --allow-pipes to run it, "
                "or convert the audio to files first"
            )
        out = cache / f"{rec}.wav"
        if not out.exists():
            wav = subprocess.run(entry[:-1], shell=True, capture_output=True, check=False)
            if wav.returncode != 0 or not wav.stdout:
                raise HloraError(
                    f"{where}: the pipe for '{rec}' failed: {wav.stderr.decode(errors='replace').strip()[:200]}"
                )
            atomic_write(out, lambda p: p.write_bytes(wav.stdout))
        return str(out)
    if len(fields) != 1:
        raise HloraError(f"{where}: recording '{rec}' has extra fields after the path (a pipe must end with '|')")
    path = Path(fields[0])
    return str(path if path.is_absolute() else (data_dir / path))


def import_kaldi(
    data_dir: Path,
    lang: str | None = None,
    lang_from_id: bool = False,
    allow_pipes: bool = False,
    pipe_cache: Path | None = None,
) -> ImportResult:
    """Rows from a Kaldi data dir. The language comes from utt2lang, else --lang, else (with
    `lang_from_id`) the id's prefix before the first '_' or '-'."""
    for name in ("wav.scp", "text"):
        if not (data_dir / name).exists():
            raise HloraError(f"{data_dir / name}: missing; a Kaldi data dir needs wav.scp and text")
    recordings = read_table(data_dir / "wav.scp", 2, "<recording-id> <path> (or <recording-id> <command> |)")
    texts = _text_table(data_dir / "text")
    segments = (
        read_table(data_dir / "segments", 4, "<utt-id> <recording-id> <start> <end>")
        if (data_dir / "segments").exists()
        else None
    )
    spk = read_table(data_dir / "utt2spk", 2, "<utt-id> <speaker>") if (data_dir / "utt2spk").exists() else {}
    langs = read_table(data_dir / "utt2lang", 2, "<utt-id> <lang>") if (data_dir / "utt2lang").exists() else {}
    if not allow_pipes:  # refuse before anything else, so no partial import happens
        for rec, fields in recordings.items():
            _wav_entry(rec, fields, data_dir / "wav.scp", data_dir, False, data_dir)
    cache = pipe_cache or data_dir / "pipe_audio"
    resolved: dict[str, str] = {}

    def audio_of(rec: str) -> str:
        if rec not in resolved:
            resolved[rec] = _wav_entry(rec, recordings[rec], data_dir / "wav.scp", data_dir, allow_pipes, cache)
        return resolved[rec]

    result = ImportResult()
    for utt_id, text in texts.items():
        row = {"id": utt_id, "text": text}
        if segments is not None:
            if utt_id not in segments:
                result.rejected.append(Rejected(row, "no entry in segments"))
                continue
            rec, start, end = segments[utt_id][0], segments[utt_id][1], segments[utt_id][2]
            try:
                start_s, end_s = float(start), float(end)
            except ValueError:
                raise HloraError(f"{data_dir / 'segments'}: '{utt_id}' has non-numeric times {start} {end}") from None
        else:
            rec, start_s, end_s = utt_id, None, None
        if end_s is not None and end_s < 0:  # Kaldi: -1 means "to the end of the recording"
            end_s = None
        if rec not in recordings:
            result.rejected.append(Rejected(row, f"recording not in wav.scp: {rec}"))
            continue
        code = langs.get(utt_id, [lang])[0] if langs else lang
        if code is None and lang_from_id:
            code = utt_id.replace("-", "_").split("_")[0]
        if not code:
            result.rejected.append(Rejected(row, "no language (add utt2lang, --lang or --lang-from-id)"))
            continue
        speaker = spk.get(utt_id, [None])[0]
        result.utts.append(
            Utterance(utt_id, audio_of(rec), code, text, start_s, end_s, speaker=None if speaker == utt_id else speaker)
        )
    return result


def export_kaldi(utts: list[Utterance], out_dir: Path) -> list[Path]:
    """Write wav.scp, text, utt2spk, spk2utt, utt2lang, utt2dur (when known) and segments (when any
    utterance is a segment), sorted as Kaldi requires. Utterances without a speaker are their own
    speaker, Kaldi's convention."""
    rec_of: dict[str, str] = {}
    for u in sorted(utts, key=lambda u: u.id):
        if u.audio not in rec_of:
            stem = Path(u.audio).stem
            rec_of[u.audio] = stem if stem not in rec_of.values() else f"{stem}-{len(rec_of)}"
    segmented = any(u.start is not None or u.end is not None for u in utts)
    if not segmented:  # then each recording is one utterance: recording id = utterance id
        rec_of = {u.audio: u.id for u in utts}
    ordered = sorted(utts, key=lambda u: u.id)
    spk2utt: dict[str, list[str]] = {}
    for u in ordered:
        spk2utt.setdefault(u.speaker or u.id, []).append(u.id)
    files: dict[str, list[str]] = {
        "wav.scp": [f"{rec} {Path(audio).resolve()}" for audio, rec in sorted(rec_of.items(), key=lambda x: x[1])],
        "text": [f"{u.id} {u.text}" for u in ordered],
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
    return written


def _writer(text: str) -> Callable[[Path], None]:
    return lambda p: p.write_text(text, encoding="utf-8")
