"""Tar shards for corpora that outgrow one disk or starve on a network file system: webdataset's
layout (a plain tar; each utterance a KEY.flac of 16 kHz audio and a KEY.json of its manifest
fields), so webdataset's own readers and `tar` read them, and shards.json beside them (what each
shard holds). The shards are written whole or not at all, the index last: a folder without it is
not a corpus, and no shard cut short is read as whole.

Training streams them (ShardStream): each epoch a seeded order of the shards, split across ranks;
the trainer's process reads its shards sequentially (large reads, no file per utterance), mixes
them through a shuffle buffer and packs batches by duration; the loader workers decode the audio
and compute features. Order and batches follow from (seed, epoch, rank), so a killed run resumes
at the step after its checkpoint: the stream is read again to that batch without decoding it."""

from __future__ import annotations

import io
import json
import random
import tarfile
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import soundfile as sf

from hlora_cli.data.audio import SAMPLE_RATE, load_audio
from hlora_cli.data.manifest import Rejected, Utterance
from hlora_cli.errors import HloraError
from hlora_cli.files import atomic_write, json_text

INDEX = "shards.json"
FORMAT = "hlora-shards/1"
# manifest fields kept in each KEY.json (the audio is the KEY.flac beside it)
FIELDS = ("id", "lang", "text", "text_norm", "speaker", "duration")


@dataclass
class ShardInfo:
    file: str
    utterances: int
    seconds: float
    languages: dict[str, int] = field(default_factory=dict)


@dataclass
class ShardIndex:
    root: Path
    shards: list[ShardInfo]

    @property
    def utterances(self) -> int:
        return sum(s.utterances for s in self.shards)

    @property
    def seconds(self) -> float:
        return sum(s.seconds for s in self.shards)

    @property
    def languages(self) -> list[str]:
        return sorted({lang for s in self.shards for lang in s.languages})

    @classmethod
    def load(cls, root: str | Path) -> ShardIndex:
        root = Path(root)
        path = root / INDEX
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
            if data.get("format") != FORMAT:
                raise ValueError(f"format {data.get('format')!r}, expected {FORMAT!r}")
            shards = [ShardInfo(**s) for s in data["shards"]]
        except FileNotFoundError:
            raise HloraError(
                f"{root}: no {INDEX}; write shards with `hlora prepare shards` (an unfinished folder has none)"
            ) from None
        except (ValueError, KeyError, TypeError) as e:
            raise HloraError(f"{path}: not an hlora shard index ({e})") from None
        if not shards:
            raise HloraError(f"{path}: lists no shard")
        for s in shards:
            if not (root / s.file).is_file():
                raise HloraError(f"{root / s.file}: listed in {INDEX} but missing")
        return cls(root, shards)


def is_shard_dir(path: str | Path) -> bool:
    return Path(path).is_dir() and (Path(path) / INDEX).is_file()


def write_shards(
    utts: list[Utterance], out_dir: Path, shard_size: int, shuffle: bool = True, seed: int = 0
) -> tuple[ShardIndex, list[Rejected]]:
    """Every readable utterance's segment as 16 kHz FLAC in shards of `shard_size` utterances
    (shuffled first, so that each shard mixes languages and speakers); unreadable ones rejected."""
    if shard_size < 1:
        raise HloraError(f"--shard-size {shard_size}: give at least 1 utterance per shard")
    order = list(utts)
    if shuffle:
        random.Random(seed).shuffle(order)
    out_dir.mkdir(parents=True, exist_ok=True)
    shards: list[ShardInfo] = []
    rejected: list[Rejected] = []
    pending: list[tuple[Utterance, bytes]] = []

    def flush() -> None:
        name = f"shard-{len(shards):06d}.tar"
        atomic_write(out_dir / name, lambda p: _write_tar(p, pending, sum(s.utterances for s in shards)))
        langs = Counter(u.lang for u, _ in pending)
        seconds = round(sum(u.duration for u, _ in pending), 3)
        shards.append(ShardInfo(name, len(pending), seconds, dict(sorted(langs.items()))))
        pending.clear()

    for u in order:
        try:
            samples = load_audio(u.audio, u.start, u.end)
        except HloraError as e:
            rejected.append(Rejected(u, f"audio: {e}"))
            continue
        buf = io.BytesIO()
        sf.write(buf, samples, SAMPLE_RATE, format="FLAC", subtype="PCM_16")
        u = Utterance(**{**asdict(u), "duration": round(len(samples) / SAMPLE_RATE, 6)})
        pending.append((u, buf.getvalue()))
        if len(pending) == shard_size:
            flush()
    if pending:
        flush()
    if not shards:
        raise HloraError("no utterance could be read: nothing to shard")
    index = {"format": FORMAT, "shards": [asdict(s) for s in shards]}
    index["utterances"], index["seconds"] = sum(s.utterances for s in shards), sum(s.seconds for s in shards)
    atomic_write(out_dir / INDEX, lambda p: p.write_text(json_text(index, indent=1) + "\n", encoding="utf-8"))
    return ShardIndex(out_dir, shards), rejected


def _write_tar(path: Path, items: list[tuple[Utterance, bytes]], first: int) -> None:
    with tarfile.open(path, "w", format=tarfile.USTAR_FORMAT) as tar:
        for n, (u, flac) in enumerate(items, first):
            key = f"{n:09d}"  # webdataset keys hold no dot; the id is in the json
            meta = {k: v for k, v in asdict(u).items() if k in FIELDS and v is not None}
            for suffix, data in (("json", json_text(meta).encode("utf-8")), ("flac", flac)):
                info = tarfile.TarInfo(f"{key}.{suffix}")
                info.size, info.mtime, info.mode = len(data), 0, 0o644  # the same bytes on every run
                tar.addfile(info, io.BytesIO(data))


def read_shard(path: Path) -> Iterator[tuple[dict, bytes]]:
    """(manifest fields, FLAC bytes) of each utterance of a shard, read front to back."""
    meta: dict[str, dict] = {}
    audio: dict[str, bytes] = {}
    try:
        with tarfile.open(path, mode="r|") as tar:
            for member in tar:
                if not member.isfile():
                    continue
                key, _, suffix = member.name.rpartition(".")
                data = tar.extractfile(member).read()
                if suffix == "json":
                    meta[key] = json.loads(data)
                elif suffix == "flac":
                    audio[key] = data
                if key in meta and key in audio:
                    yield meta.pop(key), audio.pop(key)
    except (tarfile.TarError, OSError, EOFError, ValueError) as e:
        raise HloraError(f"{path}: not a readable shard ({e}); write the shards again") from None
    if meta or audio:
        raise HloraError(f"{path}: {len(meta) + len(audio)} member(s) without their pair (KEY.json and KEY.flac)")


def decode_flac(data: bytes, name: str) -> np.ndarray:
    """A shard's audio as 16 kHz mono float32 (the shards hold nothing else)."""
    try:
        x, sr = sf.read(io.BytesIO(data), dtype="float32")
    except (sf.LibsndfileError, RuntimeError) as e:
        raise HloraError(f"{name}: cannot decode audio ({e})") from None
    if sr != SAMPLE_RATE or x.ndim != 1 or len(x) == 0:
        raise HloraError(f"{name}: expected 16 kHz mono audio, found {sr} Hz, shape {x.shape}")
    return x


class ShardStream:
    """Batches of (example, FLAC bytes) streamed from the shards, with the sampler's interface
    (next, state_dict, load_state_dict) so the trainer's loader takes it as it takes a sampler."""

    def __init__(
        self,
        index: ShardIndex,
        make: Callable[[dict, str], object | None],
        batch_seconds: float,
        seed: int = 0,
        rank: int = 0,
        world_size: int = 1,
        buffer: int = 1000,
    ) -> None:
        if len(index.shards) < world_size:
            raise HloraError(
                f"{index.root}: {len(index.shards)} shard(s) for {world_size} processes: every process needs "
                "one at least; write smaller shards (--shard-size)"
            )
        self.index, self.make, self.batch_seconds = index, make, batch_seconds
        self.seed, self.rank, self.world_size, self.buffer = seed, rank, world_size, buffer
        self.epoch, self.position = 0, 0
        self._batches: Iterator[list] | None = None

    def shards_of(self, epoch: int) -> list[Path]:
        """This process's shards in epoch `epoch`: a seeded order of all, every world_size-th."""
        order = list(range(len(self.index.shards)))
        random.Random(self.seed * 1_000_003 + epoch).shuffle(order)
        return [self.index.root / self.index.shards[i].file for i in order[self.rank :: self.world_size]]

    def _epoch(self, epoch: int) -> Iterator[list]:
        rng = random.Random((self.seed * 1_000_003 + epoch) * 1009 + self.rank)
        pool: list[tuple[object, bytes]] = []
        batch: list[tuple[object, bytes]] = []
        longest = 0.0

        def drawn() -> Iterator[tuple[object, bytes]]:
            while pool:  # a random item of the pool, swapped out: O(1)
                i = rng.randrange(len(pool))
                pool[i], pool[-1] = pool[-1], pool[i]
                yield pool.pop()

        def items() -> Iterator[tuple[object, bytes]]:
            for path in self.shards_of(epoch):
                for meta, flac in read_shard(path):
                    example = self.make(meta, f"{path.name}:{meta.get('id')}")
                    if example is None:
                        continue
                    pool.append((example, flac))
                    if len(pool) >= self.buffer:
                        yield next(drawn())
            yield from drawn()

        for item in items():
            duration = item[0].utt.duration
            if batch and (len(batch) + 1) * max(longest, duration) > self.batch_seconds:
                yield batch
                batch, longest = [], 0.0
            batch.append(item)
            longest = max(longest, duration)
        if batch:
            yield batch

    def next(self) -> list:
        """The next batch; an epoch that ends starts the next."""
        while True:
            if self._batches is None:
                self._batches = self._epoch(self.epoch)
                for _ in range(self.position):  # resuming: read to where the state says, decode nothing
                    next(self._batches, None)
            batch = next(self._batches, None)
            if batch is not None:
                self.position += 1
                return batch
            if self.position == 0:
                raise HloraError(f"{self.index.root}: no usable utterance in this process's shards")
            self.epoch, self.position, self._batches = self.epoch + 1, 0, None

    def state_dict(self) -> dict:
        return {"epoch": self.epoch, "position": self.position}

    def load_state_dict(self, state: dict) -> None:
        if (state["epoch"], state["position"]) != (self.epoch, self.position) or self._batches is None:
            self.epoch, self.position, self._batches = state["epoch"], state["position"], None
