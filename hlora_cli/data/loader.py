"""Audio read and turned into features in background worker processes, in the order asked for.

One mechanism for training, evaluation, decoding and LID: the caller hands in an iterable of
jobs (a batch's segments plus a key of its own), a torch DataLoader's workers read each job's
audio and run the model's feature frontend on it, and the caller gets them back in order. With
0 workers the same code runs in the calling process. Only segments and keys travel to the
workers, never the manifest, so a million-line manifest costs the workers nothing."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

import torch
from torch.utils.data import DataLoader, Dataset

from hlora_cli.data.audio import load_audio
from hlora_cli.data.features import Features, Frontend
from hlora_cli.data.shards import decode_flac
from hlora_cli.device import usable_cores
from hlora_cli.errors import HloraError


@dataclass(frozen=True)
class Segment:
    """What to read: a file, or its start..end seconds; or the FLAC bytes of a shard's utterance
    (`data`, with `audio` naming it as SHARD:ID)."""

    audio: str
    start: float | None = None
    end: float | None = None
    data: bytes | None = None


@dataclass
class Job:
    key: Any  # handed back as it is (the caller's indices, a sampler state)
    segments: list[Segment]


@dataclass
class Loaded:
    key: Any
    feats: Features | None  # of the segments that loaded, in their order; None when none did
    kept: list[int]  # positions in the job's segments that loaded
    failed: dict[int, str] = field(default_factory=dict)  # position -> why not (names the file)
    error: str | None = None  # the batch failed as a whole (the frontend refused it)

    def pin_memory(self) -> Loaded:
        if self.feats is not None:
            self.feats = self.feats.pin_memory()
        return self


def default_workers() -> int:
    """Loader processes beside the one that trains or decodes: none on 1-2 cores (reading and
    featurising in the process costs a few per cent of a step, a worker would take a core from the
    model), else a quarter of the cores, at most 4; torch's threads get the rest (fit_threads)."""
    cores = usable_cores()
    return 0 if cores <= 2 else max(1, min(4, cores // 4))


def load_job(job: Job, frontend: Frontend) -> Loaded:
    """Read every segment of `job` (one that does not read is left out, with its reason) and
    compute the features of those that did."""
    waves, kept, failed = [], [], {}
    for i, s in enumerate(job.segments):
        try:
            waves.append(load_audio(s.audio, s.start, s.end) if s.data is None else decode_flac(s.data, s.audio))
        except HloraError as e:
            failed[i] = str(e)
            continue
        kept.append(i)
    if not waves:
        return Loaded(job.key, None, kept, failed)
    try:
        return Loaded(job.key, frontend(waves), kept, failed)
    except HloraError as e:  # raised again in the calling process, as one line
        return Loaded(job.key, None, kept, failed, error=str(e))


class _Loading(Dataset):
    """A map-style dataset whose keys are jobs (module level: spawn-started workers unpickle it)."""

    def __init__(self, frontend: Frontend) -> None:
        self.frontend = frontend

    def __getitem__(self, job: Job) -> Loaded:
        return load_job(job, self.frontend)


class _Jobs:
    """The jobs as a DataLoader sampler: iterated in the calling process, as the workers ask."""

    def __init__(self, jobs: Iterable[Job]) -> None:
        self.jobs = jobs

    def __iter__(self) -> Iterator[Job]:
        return iter(self.jobs)


def _as_is(loaded: Loaded) -> Loaded:
    return loaded


def load_in_background(
    jobs: Iterable[Job], frontend: Frontend, workers: int, pin_memory: bool = False, prefetch: int = 2
) -> Iterator[Loaded]:
    """`Loaded` for each job, in order, read `prefetch` jobs per worker ahead of the caller.
    `pin_memory` (for CUDA) pages the features in, so their copy to the GPU can overlap compute."""
    loader = DataLoader(
        _Loading(frontend),
        sampler=_Jobs(jobs),
        batch_size=None,  # each job is already a batch
        num_workers=workers,
        collate_fn=_as_is,
        pin_memory=pin_memory,
        prefetch_factor=prefetch if workers > 0 else None,
        # its own generator: starting workers draws a seed, which must not move the global RNG
        # that dropout uses (an exact resume restores that RNG, then starts the workers again)
        generator=torch.Generator().manual_seed(0),
    )
    for loaded in loader:
        if loaded.error is not None:
            raise HloraError(loaded.error)
        yield loaded
