"""What `hlora decode` and `hlora lid` read: audio files, folders of audio, or manifests."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from hlora_cli.data.audio import audio_info
from hlora_cli.data.importers.folder import AUDIO_SUFFIXES
from hlora_cli.data.manifest import read_manifest
from hlora_cli.errors import HloraError


@dataclass
class Item:
    id: str
    audio: str
    start: float | None = None
    end: float | None = None
    lang: str | None = None  # known language (manifest), for oracle decoding and LID accuracy
    duration: float | None = None


def collect_inputs(inputs: list[str]) -> list[Item]:
    """Manifests (.jsonl) give their rows; folders give their audio files (ids = relative paths);
    files give themselves (ids = file stems)."""
    items: list[Item] = []
    for raw in inputs:
        path = Path(raw)
        if not path.exists():
            raise HloraError(f"{path}: no such file or folder")
        if path.is_file() and path.suffix == ".jsonl":
            items += [Item(u.id, u.audio, u.start, u.end, u.lang, u.duration) for u in read_manifest(path)]
        elif path.is_dir():
            files = sorted(p for p in path.rglob("*") if p.suffix.lower() in AUDIO_SUFFIXES and p.is_file())
            if not files:
                raise HloraError(f"{path}: no audio files in this folder")
            items += [Item("-".join(p.relative_to(path).with_suffix("").parts), str(p)) for p in files]
        else:
            items.append(Item(path.stem, str(path)))
    ids = [i.id for i in items]
    if len(set(ids)) != len(ids):
        dup = sorted({i for i in ids if ids.count(i) > 1})
        raise HloraError(f"duplicate utterance ids in the inputs: {', '.join(dup[:5])}")
    return items


def item_duration(item: Item) -> float:
    """Seconds of audio (reads the header when the manifest does not say)."""
    if item.duration is None:
        end = item.end if item.end is not None else audio_info(item.audio).duration
        item.duration = end - (item.start or 0.0)
    return item.duration
