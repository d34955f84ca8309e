"""What a decoding pass gives back: a result per recording, and the pass's report."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass
class Result:
    id: str
    lang: str
    lang_probs: dict[str, float]
    text: str
    words: list[tuple[str, float, float]]
    duration: float


@dataclass
class Report:
    results: list[Result]
    skipped: list[tuple[str, str]]  # (id, reason)
    audio_seconds: float
    wall_seconds: float

    @property
    def rtf(self) -> float:
        return self.wall_seconds / max(1e-9, self.audio_seconds)
