"""A folder of audio files, each with a same-named .txt transcript, in one language."""

from __future__ import annotations

from pathlib import Path

from hlora_cli.data.importers import ImportResult, read_text
from hlora_cli.data.langs import language_code
from hlora_cli.data.manifest import Rejected, Utterance
from hlora_cli.errors import HloraError

AUDIO_SUFFIXES = {".wav", ".flac", ".ogg", ".opus", ".mp3"}


def audio_files(directory: Path) -> list[tuple[str, Path]]:
    """(utterance id, path) of the audio files below `directory`, the id being the relative path
    without suffix, its parts joined by '-' (whitespace becomes '_'). Two files with one id
    (`x.wav` and `x.flac`) are an error naming both."""
    found: dict[str, Path] = {}
    clashes: list[str] = []
    for path in sorted(p for p in directory.rglob("*") if p.suffix.lower() in AUDIO_SUFFIXES and p.is_file()):
        utt_id = "_".join("-".join(path.relative_to(directory).with_suffix("").parts).split())
        if utt_id in found:
            clashes.append(f"'{utt_id}' ({found[utt_id]} and {path})")
        else:
            found[utt_id] = path
    if clashes:
        more = f" and {len(clashes) - 3} more" if len(clashes) > 3 else ""
        raise HloraError(
            f"{directory}: two audio files give the same utterance id: {'; '.join(clashes[:3])}{more}; "
            "keep one of each pair"
        )
    return list(found.items())


def import_folder(directory: Path, lang: str) -> ImportResult:
    lang = language_code(lang, "--lang")
    if not directory.is_dir():
        raise HloraError(f"{directory}: not a directory")
    audio = audio_files(directory)
    if not audio:
        raise HloraError(f"{directory}: no audio files ({', '.join(sorted(AUDIO_SUFFIXES))})")
    result = ImportResult()
    for utt_id, path in audio:
        txt = path.with_suffix(".txt")
        if not txt.exists():
            result.rejected.append(Rejected({"id": utt_id, "audio": str(path)}, f"no transcript: {txt.name}"))
            continue
        text = " ".join(read_text(txt).split())
        result.utts.append(Utterance(utt_id, str(path), lang, text))
    return result
