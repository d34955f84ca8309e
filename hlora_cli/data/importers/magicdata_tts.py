"""Magic Data's Mandarin Chinese TTS corpora (e.g. the Customer Service Scene corpus): one speaker,
48 kHz studio WAVs, transcripts with prosody marks.

    ROOT/ProsodyLabeling/<domain>.txt   `<id>\\t<text with #1..#4 prosody marks>`, then a line of
                                        pinyin starting with a tab
    ROOT/Wave/<domain>/<id>.wav

The marks `#1`-`#4` (prosodic word, phrase, intonation phrase, sentence end) are not speech and are
removed; punctuation is left to the normalizer. The audio is resampled to 16 kHz when read."""

from __future__ import annotations

import re
from pathlib import Path

from hlora_cli.data.importers import ImportResult, read_lines
from hlora_cli.data.manifest import Rejected, Utterance
from hlora_cli.errors import HloraError

_PROSODY = re.compile(r"#[1-4]")
_ROW = re.compile(r"^(\S+)\t(.+)$")


def strip_prosody(text: str) -> str:
    """`它#1包含了#1课程#2，` -> `它包含了课程，`; `VIP#1一对一` -> `VIP一对一`; a mark between two Latin
    words leaves their space (`Java#1Script` -> `Java Script`)."""
    return _join_han(" ".join(_PROSODY.sub(" ", text).split()))


def import_magicdata_tts(root: Path, lang: str = "zh") -> ImportResult:
    labels = root / "ProsodyLabeling"
    files = sorted(labels.glob("*.txt")) if labels.is_dir() else []
    if not files:
        raise HloraError(f"{labels}: no transcript files (*.txt); give the corpus folder that holds ProsodyLabeling/")
    result = ImportResult()
    for path in files:
        domain = path.stem
        for n, line in enumerate(read_lines(path), 1):
            if not line.strip() or line[0] in " \t":  # blank, or the pinyin line under a transcript
                continue
            m = _ROW.match(line)
            if not m:
                raise HloraError(f"{path}:{n}: expected '<id><TAB><text>'")
            utt_id, text = m.groups()
            audio = root / "Wave" / domain / f"{utt_id}.wav"
            text = strip_prosody(text)
            if not text:
                result.rejected.append(Rejected({"id": utt_id}, f"empty text: {path}:{n}"))
                continue
            result.utts.append(Utterance(utt_id, str(audio), lang, text))
    return result


# a space with a non-ASCII (Chinese) character on at least one side
_HAN_GAP = re.compile(r"(?<=[^\x00-\x7f]) | (?=[^\x00-\x7f])")


def _join_han(text: str) -> str:
    """Chinese is written without spaces: drop the spaces a removed mark left next to a Chinese
    character, keep those between two Latin words (`Java Script`)."""
    return _HAN_GAP.sub("", text)
