"""Long recordings in bounded memory: overlapping windows read one batch at a time, each
contributing the frames of its middle to one stitched log-probability matrix."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Window:
    item: int  # index of the recording
    index: int  # window number within it
    start: float  # seconds from the recording's (or segment's) start
    end: float
    keep_from: float  # the part of this window whose frames are kept
    keep_to: float


def windows(item: int, duration: float, length: float, overlap: float) -> list[Window]:
    """Cover [0, duration] with windows of `length` s overlapping by `overlap` s; each keeps the
    frames up to the middle of its overlaps, so every moment is decoded by exactly one window
    with context on both sides."""
    if duration <= length:
        return [Window(item, 0, 0.0, duration, 0.0, duration)]
    step = length - overlap
    n = math.ceil((duration - overlap) / step)
    out = []
    for i in range(n):
        start = i * step
        end = min(duration, start + length)
        if i == n - 1:  # last window: as long as allowed, ending at the end
            start = max(0.0, duration - length)
        keep_from = 0.0 if i == 0 else i * step + overlap / 2
        keep_to = duration if i == n - 1 else (i + 1) * step + overlap / 2
        out.append(Window(item, i, start, end if i < n - 1 else duration, keep_from, keep_to))
    return out


def stitch(parts: list[tuple[Window, np.ndarray]], fps: float) -> np.ndarray:
    """Concatenate the kept frames of each window's (frames, vocab) log-probabilities, in order."""
    kept = []
    for w, lp in sorted(parts, key=lambda p: p[0].index):
        first = max(0, int(round((w.keep_from - w.start) * fps)))
        last = min(len(lp), int(round((w.keep_to - w.start) * fps)))
        kept.append(lp[first:last])
    return np.concatenate(kept) if kept else np.zeros((0, 1), np.float32)
