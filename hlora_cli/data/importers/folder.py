"""A folder of audio files, each with a same-named .txt transcript, in one language."""

from __future__ import annotations

from pathlib import Path

from hlora_cli.data.importers import ImportResult
from hlora_cli.data.manifest import Rejected, Utterance
from hlora_cli.errors import HloraError

AUDIO_SUFFIXES = {".wav", ".flac", ".ogg", ".opus", ".mp3"}


def import_folder(directory: Path, lang: str) -> ImportResult:
    if not directory.is_dir():
        raise HloraError(f"{directory}: not a directory")
    audio = sorted(p for p in directory.rglob("*") if p.suffix.lower() in AUDIO_SUFFIXES and p.is_file())
    if not audio:
        raise HloraError(f"{directory}: no audio files ({', '.join(sorted(AUDIO_SUFFIXES))})")
    result = ImportResult()
    for path in audio:
        utt_id = "-".join(path.relative_to(directory).with_suffix("").parts)
        txt = path.with_suffix(".txt")
        if not txt.exists():
            result.rejected.append(Rejected({"id": utt_id, "audio": str(path)}, f"no transcript: {txt.name}"))
            continue
        text = " ".join(txt.read_text(encoding="utf-8").split())
        result.utts.append(Utterance(utt_id, str(path), lang, text))
    return result
