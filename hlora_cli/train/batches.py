"""The training batches, read and featurised ahead of the model by worker processes.

The sampler runs ahead of training by what the workers prefetch, so the state a checkpoint keeps
is not the sampler's own but the one it had just after the last batch handed to training: a
resumed run starts at the next step's batch, whatever had been prefetched when it stopped."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator

from hlora_cli.data.batching import DurationBatchSampler
from hlora_cli.data.features import Frontend
from hlora_cli.data.loader import Job, Loaded, Segment, load_in_background


class TrainBatches:
    def __init__(
        self,
        sampler: DurationBatchSampler,
        segments: Callable[[list[int]], tuple[list[int], list[Segment]]],
        frontend: Frontend,
        workers: int,
        pin_memory: bool = False,
    ) -> None:
        """`segments(indices)` gives the indices to load (those not known to be unreadable) and
        their segments."""
        self.sampler, self.segments, self.frontend = sampler, segments, frontend
        self.workers, self.pin_memory = workers, pin_memory
        self._state = sampler.state_dict()
        self._loaded: Iterator[Loaded] | None = None
        self.wait_seconds = 0.0  # time spent blocked on data, over the run

    def _jobs(self) -> Iterator[Job]:
        while True:
            idx, segments = self.segments(self.sampler.next())
            yield Job((self.sampler.state_dict(), idx), segments)

    def next(self) -> Loaded:
        """The next batch; its key is the list of example indices its segments belong to."""
        if self._loaded is None:
            self._loaded = load_in_background(self._jobs(), self.frontend, self.workers, self.pin_memory)
        start = time.perf_counter()
        loaded = next(self._loaded)
        self.wait_seconds += time.perf_counter() - start
        self._state, loaded.key = loaded.key
        return loaded

    def state_dict(self) -> dict:
        return dict(self._state)

    def load_state_dict(self, state: dict) -> None:
        self.close()
        self.sampler.load_state_dict(state)
        self._state = self.sampler.state_dict()

    def close(self) -> None:
        """Stop the workers (a later `next` starts them again where the state says)."""
        if self._loaded is not None:
            self._loaded.close()
            self._loaded = None
        self.sampler.load_state_dict(self._state)
