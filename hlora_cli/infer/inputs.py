"""What `hlora decode` and `hlora lid` read: audio files, folders of audio, or manifests."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from hlora_cli.data.audio import segment_duration
from hlora_cli.data.importers.folder import audio_files
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
    source: str | None = None  # the manifest it came from, for messages


def collect_inputs(inputs: list[str]) -> list[Item]:
    """Manifests (.jsonl) give their rows; folders give their audio files (ids = relative paths);
    files give themselves (ids = file stems). Two inputs with one id are an error naming both."""
    items: list[Item] = []
    for raw in inputs:
        path = Path(raw)
        if not path.exists():
            raise HloraError(f"{path}: no such file or folder")
        if path.is_file() and path.suffix == ".jsonl":
            items += [Item(u.id, u.audio, u.start, u.end, u.lang, u.duration, str(path)) for u in read_manifest(path)]
        elif path.is_dir():
            files = audio_files(path)
            if not files:
                raise HloraError(f"{path}: no audio files in this folder")
            items += [Item(utt_id, str(p)) for utt_id, p in files]
        else:
            items.append(Item(path.stem, str(path)))
    first: dict[str, Item] = {}
    clashes: list[str] = []
    for it in items:
        if it.id in first:
            clashes.append(f"'{it.id}' ({_where(first[it.id])} and {_where(it)})")
        else:
            first[it.id] = it
    if clashes:
        more = f" and {len(clashes) - 3} more" if len(clashes) > 3 else ""
        raise HloraError(f"duplicate utterance ids in the inputs: {'; '.join(clashes[:3])}{more}; rename one of each")
    if not items:
        raise HloraError(f"{', '.join(map(str, inputs))}: no audio to decode (an empty manifest or folder)")
    return items


def _where(it: Item) -> str:
    if it.start is None and it.end is None:
        return it.audio
    return f"{it.audio} {it.start or 0.0:g}-{it.end if it.end is not None else 'end'} s"


def item_duration(item: Item) -> float:
    """Seconds of audio (reads the header when the manifest does not say). A FIFO or a device is
    refused here, before anything opens it: reading one would block the decode."""
    path = Path(item.audio)
    if not path.is_file():
        raise HloraError(
            f"{item.audio}: {'a directory' if path.is_dir() else 'not a regular file'}; give an audio file"
        )
    if item.duration is None:
        item.duration = segment_duration(item.audio, item.start, item.end)
    return item.duration


def chunks(items: list[Item], seconds: float) -> Iterator[list[Item]]:
    """Consecutive runs of items of about `seconds` of audio each (at least one item): what a
    streaming decode holds at a time. An item whose header does not read counts as 0 s (the
    decoding pass skips it and says why)."""
    chunk: list[Item] = []
    total = 0.0
    for it in items:
        try:
            d = item_duration(it)
        except HloraError:
            d = 0.0
        if chunk and total + d > seconds:
            yield chunk
            chunk, total = [], 0.0
        chunk.append(it)
        total += d
    if chunk:
        yield chunk
