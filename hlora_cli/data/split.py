"""Held-out splits that keep groups whole: every recording of one sentence (or one speaker) lands on
one side, so a test set never holds a sentence the model was trained on."""

from __future__ import annotations

import random
from collections import defaultdict
from collections.abc import Callable

from hlora_cli.data.manifest import Utterance
from hlora_cli.errors import HloraError
from text_normalization.registry import normalize

SPLIT_KEYS: dict[str, Callable[[Utterance], str]] = {
    # the normalized text: punctuation and case do not make two readings of one sentence differ
    "text": lambda u: f"{u.lang}\t{u.text_norm or normalize(u.text, u.lang)}",
    "speaker": lambda u: f"{u.lang}\t{u.speaker or u.id}",
    "id": lambda u: u.id,
}


def split_groups(
    utts: list[Utterance], by: str, test_fraction: float, seed: int = 0
) -> tuple[list[Utterance], list[Utterance]]:
    """(train, test): per language, round(test_fraction x groups) groups drawn at random (seeded) go
    to test, the rest to train; each side keeps the input's order. Groups are keyed by `by` (a
    SPLIT_KEYS name)."""
    if by not in SPLIT_KEYS:
        raise HloraError(f"--by {by}: choose {', '.join(SPLIT_KEYS)}")
    if not 0 < test_fraction < 1:
        raise HloraError(f"--test-fraction {test_fraction:g}: give a fraction between 0 and 1")
    keys = [SPLIT_KEYS[by](u) for u in utts]  # once each: the text key normalizes
    groups: dict[str, dict[str, None]] = defaultdict(dict)  # lang -> keys in first-seen order
    for u, k in zip(utts, keys, strict=True):
        groups[u.lang][k] = None
    rng = random.Random(seed)
    test_keys: set[str] = set()
    for lang in sorted(groups):
        ordered = list(groups[lang])
        n_test = round(test_fraction * len(ordered))
        if len(ordered) > 1:
            n_test = min(max(n_test, 1), len(ordered) - 1)  # both sides non-empty where there are two groups
        test_keys.update(rng.sample(ordered, n_test))
    train = [u for u, k in zip(utts, keys, strict=True) if k not in test_keys]
    test = [u for u, k in zip(utts, keys, strict=True) if k in test_keys]
    return train, test
