"""The MLC-SLM 2025 challenge layout (Interspeech 2025, Task I data).

    ROOT/.../English/American/0517_007.wav   long two-speaker conversation
    ROOT/.../English/American/0517_007.txt   one segment a line: START END SPEAKER TEXT...
    ROOT/.../French/0011_002.wav + .txt      (likewise German, Italian, Japanese, Korean, ...)

as documented by the challenge's baseline data preparation (times in seconds, whitespace
separated). Segment ids follow the challenge's: <path parts joined by '-'>-<speaker>-<start cs:06d>-<end cs:06d>.
Each segment becomes a manifest row with start/end: the recording is cut virtually, never copied.
"""

from __future__ import annotations

from pathlib import Path

from hlora_cli.data.audio import segment_text
from hlora_cli.data.importers import ImportResult, read_lines
from hlora_cli.data.manifest import Rejected, Utterance
from hlora_cli.errors import HloraError

LANGUAGES = {
    "french": "fr",
    "german": "de",
    "italian": "it",
    "japanese": "ja",
    "korean": "ko",
    "portuguese": "pt",
    "russian": "ru",
    "spanish": "es",
    "thai": "th",
    "vietnamese": "vi",
}
ENGLISH_ACCENTS = {
    "american": "en-US",
    "british": "en-GB",
    "australian": "en-AU",
    "indian": "en-IN",
    "filipino": "en-PH",
}


def language_of(txt: Path, root: Path) -> tuple[str, list[str]]:
    """(language code, path parts below the language folder's parent) for a transcript."""
    parts = txt.relative_to(root).parts
    for i, part in enumerate(parts[:-1]):
        name = part.lower()
        if name in LANGUAGES:
            return LANGUAGES[name], list(parts[i:])
        if name == "english":
            accent = parts[i + 1].lower() if i + 1 < len(parts) - 1 else ""
            if accent not in ENGLISH_ACCENTS:
                accents = ", ".join(a.title() for a in ENGLISH_ACCENTS)
                raise HloraError(f"{txt}: English data must lie in an accent folder ({accents})")
            return ENGLISH_ACCENTS[accent], list(parts[i:])
    folders = ", ".join(["English/<accent>"] + [n.title() for n in LANGUAGES])
    raise HloraError(f"{txt}: cannot tell its language: expected it below a folder named one of {folders}")


def parse_transcript(txt: Path) -> list[tuple[float, float, str, str]]:
    """(start, end, speaker, text) per line; any malformed line is an error naming file and line."""
    segments = []
    for n, line in enumerate(read_lines(txt), 1):
        if not line.strip():
            continue
        fields = line.split(maxsplit=3)
        if len(fields) < 4:
            raise HloraError(f"{txt}:{n}: expected 'START END SPEAKER TEXT', got {line.strip()[:60]!r}")
        try:
            start, end = float(fields[0]), float(fields[1])
        except ValueError:
            raise HloraError(f"{txt}:{n}: START and END must be seconds, got {fields[0]!r} {fields[1]!r}") from None
        if not 0 <= start < end:
            raise HloraError(f"{txt}:{n}: {segment_text(start, end)} is empty or starts before 0 s")
        segments.append((start, end, fields[2], fields[3].strip()))
    return segments


def import_mlc_slm(root: Path) -> ImportResult:
    if not root.is_dir():
        raise HloraError(f"{root}: not a directory")
    transcripts = sorted(root.rglob("*.txt"))
    if not transcripts:
        raise HloraError(f"{root}: no transcript (.txt) files found; is this an MLC-SLM data folder?")
    result = ImportResult()
    for txt in transcripts:
        lang, parts = language_of(txt, root)
        wav = txt.with_suffix(".wav")
        record_id = "-".join(parts[:-1] + [txt.stem])
        segments = parse_transcript(txt)
        for start, end, speaker, text in segments:
            seg_id = f"{record_id}-{speaker}-{int(round(start * 100)):06d}-{int(round(end * 100)):06d}"
            if not wav.exists():
                result.rejected.append(Rejected({"id": seg_id, "audio": str(wav), "text": text}, "recording not found"))
                continue
            result.utts.append(
                Utterance(seg_id, str(wav), lang, text, start=start, end=end, speaker=f"{record_id}-{speaker}")
            )
    return result
