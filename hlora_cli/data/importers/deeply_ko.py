"""The Deeply Korean Read Speech Corpus (deeplyinc/Korean-Read-Speech-Corpus): two speakers reading
the same sentences in three rooms, at three distances, on two phones.

    ROOT/dataset/Korean_Read_Speech_Corpus_sample.json   {room: {utt_id: {text, text_code, speaker,
                                                           subjectID, location, distance, device, ...}}}
    ROOT/dataset/<room>/<utt_id>.wav                      16 kHz mono

ROOT may be the repository or its `dataset/` folder. Each row's speaker is the session's subject and
the reader (`sub1001-a`). The same sentence recurs in every room: split it with `hlora prepare split
--by text` so that no sentence is in both train and test."""

from __future__ import annotations

import json
from pathlib import Path

from hlora_cli.data.importers import ImportResult, read_text
from hlora_cli.data.manifest import Rejected, Utterance
from hlora_cli.errors import HloraError

TRANSCRIPTS = "Korean_Read_Speech_Corpus_sample.json"


def import_deeply_ko(root: Path) -> ImportResult:
    dataset = root / "dataset" if (root / "dataset" / TRANSCRIPTS).exists() else root
    path = dataset / TRANSCRIPTS
    if not path.is_file():
        raise HloraError(f"{path}: not found; give the Korean-Read-Speech-Corpus folder or its dataset/ folder")
    try:
        rooms = json.loads(read_text(path))
    except json.JSONDecodeError as e:
        raise HloraError(f"{path}:{e.lineno}: not JSON ({e.msg})") from None
    if not isinstance(rooms, dict) or not all(isinstance(v, dict) for v in rooms.values()):
        raise HloraError(f"{path}: expected {{room: {{utterance id: {{text, ...}}}}}}")
    result = ImportResult()
    for room, utts in sorted(rooms.items()):
        for utt_id, meta in sorted(utts.items()):
            text = meta.get("text") if isinstance(meta, dict) else None
            if not isinstance(text, str):
                result.rejected.append(Rejected({"id": utt_id}, f"no text: {path}: {room}/{utt_id}"))
                continue
            audio = dataset / room / f"{utt_id}.wav"
            subject, reader = meta.get("subjectID"), meta.get("speaker")
            speaker = f"{subject}-{reader}" if subject and reader else None
            result.utts.append(Utterance(utt_id, str(audio), "ko", " ".join(text.split()), speaker=speaker))
    if not result.utts and not result.rejected:
        raise HloraError(f"{path}: no utterances")
    return result
