"""Greedy CTC decoding: best token per frame, repeats collapsed, blanks removed."""

from __future__ import annotations

import torch


def greedy_decode(log_probs: torch.Tensor, lengths: torch.Tensor, blank: int = 0) -> list[list[int]]:
    """log_probs : shape = (batch, frames, vocab); lengths : shape = (batch,).
    Returns the token ids of each utterance."""
    best = log_probs.argmax(-1).cpu()
    keep = torch.ones_like(best, dtype=torch.bool)
    keep[:, 1:] = best[:, 1:] != best[:, :-1]
    keep &= best != blank
    return [best[b, : int(n)][keep[b, : int(n)]].tolist() for b, n in enumerate(lengths.tolist())]
