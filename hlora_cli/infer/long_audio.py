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


def windows(item: int, duration: float, length: float, overlap: float, fps: float = 50.0) -> list[Window]:
    """Cover [0, duration] with windows of `length` s overlapping by `overlap` s; each keeps the
    frames up to the middle of its overlaps, so every moment is decoded by exactly one window
    with context on both sides. Starts and kept boundaries fall on the encoder's frame grid
    (`fps` output frames a second), so each window's frames are frames of the whole recording."""
    if duration <= length:
        return [Window(item, 0, 0.0, duration, 0.0, duration)]
    frames, span = duration * fps, math.floor(length * fps + 1e-6)  # in output frames
    step = math.floor((length - overlap) * fps + 1e-6)
    half = (span - step) // 2  # frames of context kept on each side of a boundary
    n = math.ceil((frames - (span - step)) / step - 1e-9)
    out = []
    for i in range(n):
        last = i == n - 1
        start = max(0, math.ceil(frames - span - 1e-6)) if last else i * step  # the last one ends at the end
        keep_from = 0 if i == 0 else i * step + half
        end = duration if last else (start + span) / fps
        keep_to = duration if last else ((i + 1) * step + half) / fps
        out.append(Window(item, i, start / fps, end, keep_from / fps, keep_to))
    return out


def stitch(parts: list[tuple[Window, np.ndarray]], fps: float) -> np.ndarray:
    """Concatenate the kept frames of each window's (frames, vocab) log-probabilities, in order.
    A window keeps the frames whose centre lies in [keep_from, keep_to): the kept spans tile the
    recording, so every moment is decoded once, whichever frame grid each window's start gives."""
    kept = []
    for w, lp in sorted(parts, key=lambda p: p[0].index):
        # frame j of the window is centred at start + (j + 0.5) / fps; 1e-6 absorbs float error
        first = max(0, math.ceil((w.keep_from - w.start) * fps - 0.5 - 1e-6))
        last = min(len(lp), math.ceil((w.keep_to - w.start) * fps - 0.5 - 1e-6))
        kept.append(lp[first:last])
    return np.concatenate(kept) if kept else np.zeros((0, 1), np.float32)


def text_windows(item: int, duration: float, length: float) -> list[Window]:
    """seq2seq: cover [0, duration] with the fewest equal windows of at most `length` s, without
    overlap (a decoder writes text, not frames: overlapping windows would write their shared
    speech twice). Each window's text is joined in order."""
    n = max(1, math.ceil(duration / length - 1e-9))
    step = duration / n
    ends = [duration if i == n - 1 else (i + 1) * step for i in range(n)]
    return [Window(item, i, i * step, ends[i], i * step, ends[i]) for i in range(n)]
