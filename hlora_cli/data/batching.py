"""Batches by total (padded) audio seconds.

The sampler is a pure function of (seed, epoch). "sorted" batching orders utterances by a jittered
duration, so a batch holds utterances of similar length (little padding) while its composition
still varies between epochs. But where languages differ in length (Japanese sentences spoken at
twice the length of English ones), sorted batches hold one language each, and the LID head and the
shared LoRA are pulled towards one language per step. "mixed" batching packs a random order, so
every batch mixes languages, at the price of padding. Batch order is shuffled. Under DDP every
rank computes the same global list and takes every world_size-th batch, so a position in it is the
whole sampler state."""

from __future__ import annotations

import math
import random
from dataclasses import dataclass

from hlora_cli.data.manifest import Utterance
from hlora_cli.errors import HloraError


@dataclass(slots=True)
class Example:
    utt: Utterance
    lang_index: int  # index into the model's languages (Utterance.lang is the code)
    targets: list[int]  # token ids in the inventory of the head that trains on it
    targets_by_lang: list[list[int]] | None = None  # soft routing: the text in every language's inventory


BATCHINGS = ("mixed", "sorted")


def duration_batches(
    durations: list[float],
    batch_seconds: float,
    seed: int,
    epoch: int,
    shuffle: bool = True,
    mixed: bool = False,
    groups: list[int] | None = None,
) -> list[list[int]]:
    """Indices grouped so that (longest utterance x batch size) <= batch_seconds; consecutive in
    (jittered) duration order, or, when `mixed`, in a random order in which each group (language)
    is spread evenly, so that neighbours, and so the utterances of a batch, are of different groups
    wherever the groups' sizes allow."""
    rng = random.Random(seed * 100_003 + epoch)
    if mixed:
        order = _spread(groups or [0] * len(durations), rng)
    else:
        jitter = [d * (1 + rng.uniform(-0.1, 0.1)) if shuffle else d for d in durations]
        order = sorted(range(len(durations)), key=lambda i: jitter[i])
    batches: list[list[int]] = []
    current: list[int] = []
    longest = 0.0
    for i in order:
        longest_if_added = max(longest, durations[i])
        if current and longest_if_added * (len(current) + 1) > batch_seconds:
            batches.append(current)
            current, longest_if_added = [], durations[i]
        current.append(i)
        longest = longest_if_added
    if current:
        batches.append(current)
    if shuffle:
        rng.shuffle(batches)
    return batches


def _spread(groups: list[int], rng: random.Random) -> list[int]:
    """A random order of the indices in which the members of each group sit at evenly spaced
    positions (member j of a group of n at about (j + u) / n of the way, u random per group)."""
    members: dict[int, list[int]] = {}
    for i, g in enumerate(groups):
        members.setdefault(g, []).append(i)
    keyed = []
    for g in sorted(members):
        idx = members[g]
        rng.shuffle(idx)
        offset = rng.random()
        keyed += [((j + offset) / len(idx), rng.random(), i) for j, i in enumerate(idx)]
    return [i for _, _, i in sorted(keyed)]


class DurationBatchSampler:
    """Endless stream of batches over epochs, resumable from (epoch, position)."""

    def __init__(
        self,
        durations: list[float],
        batch_seconds: float,
        seed: int,
        shuffle: bool = True,
        rank: int = 0,
        world_size: int = 1,
        batching: str = "sorted",
        groups: list[int] | None = None,  # mixed batching: each utterance's language
    ) -> None:
        if batching not in BATCHINGS:
            raise HloraError(f"unknown batching '{batching}': choose mixed or sorted")
        if not durations:
            raise HloraError("no utterances to train on")
        if batch_seconds < max(durations):
            raise HloraError(
                f"--batch-seconds {batch_seconds:g} is smaller than the longest utterance ({max(durations):.1f} s): "
                "raise it or lower --max-duration"
            )
        self.durations, self.batch_seconds, self.seed, self.shuffle = durations, batch_seconds, seed, shuffle
        self.rank, self.world_size, self.batching, self.groups = rank, world_size, batching, groups
        self.epoch, self.position = 0, 0
        self._batches = self._epoch_batches(0)

    def _epoch_batches(self, epoch: int) -> list[list[int]]:
        batches = duration_batches(
            self.durations, self.batch_seconds, self.seed, epoch, self.shuffle, self.batching == "mixed", self.groups
        )
        usable = len(batches) // self.world_size * self.world_size
        if usable == 0:
            raise HloraError(f"{len(batches)} batch(es) per epoch cannot be shared by {self.world_size} processes")
        return batches[:usable][self.rank :: self.world_size]

    def __len__(self) -> int:
        """Batches per epoch on this rank."""
        return len(self._batches)

    def batches_in(self, epochs: float) -> int:
        """Batches this rank takes in `epochs` epochs from the start: each epoch packs its own
        (jittered or shuffled) batches, so their number differs a little from epoch to epoch."""
        full = math.floor(epochs)
        n = sum(len(self._epoch_batches(e)) for e in range(full))
        if epochs > full:
            n += math.ceil((epochs - full) * len(self._epoch_batches(full)))
        return n

    def next(self) -> list[int]:
        if self.position >= len(self._batches):
            self.epoch, self.position = self.epoch + 1, 0
            self._batches = self._epoch_batches(self.epoch)
        batch = self._batches[self.position]
        self.position += 1
        return batch

    def state_dict(self) -> dict:
        return {"epoch": self.epoch, "position": self.position}

    def load_state_dict(self, state: dict) -> None:
        self.epoch, self.position = state["epoch"], state["position"]
        self._batches = self._epoch_batches(self.epoch)
