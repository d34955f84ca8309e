"""The one audio loader: anything libsndfile reads (wav, flac, ogg/vorbis/opus, mp3), segments read
by seeking (never the whole file), downmixed to mono and resampled to 16 kHz with soxr."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import soundfile as sf
import soxr

from hlora_cli.errors import HloraError

SAMPLE_RATE = 16000


@dataclass(frozen=True)
class AudioInfo:
    sample_rate: int
    channels: int
    frames: int

    @property
    def duration(self) -> float:
        return self.frames / self.sample_rate


def _open(path: Path) -> sf.SoundFile:
    if not path.exists():
        raise HloraError(f"{path}: audio file not found")
    try:
        return sf.SoundFile(str(path))
    except (sf.LibsndfileError, RuntimeError, TypeError) as e:
        raise HloraError(f"{path}: cannot read audio ({e})") from e


def audio_info(path: str | Path) -> AudioInfo:
    """Sample rate, channels and length, from the header alone."""
    with _open(Path(path)) as f:
        return AudioInfo(f.samplerate, f.channels, f.frames)


def load_audio(path: str | Path, start: float | None = None, end: float | None = None) -> np.ndarray:
    """Samples of `path` (or of its segment start..end, in seconds) as 16 kHz mono float32.

    Raises HloraError naming the file for a missing, unreadable, corrupt or empty file and for a
    segment outside the file."""
    path = Path(path)
    with _open(path) as f:
        sr, total = f.samplerate, f.frames
        if total <= 0:
            raise HloraError(f"{path}: audio file has no samples")
        first = 0 if start is None else int(round(start * sr))
        last = total if end is None else int(round(end * sr))
        if first < 0 or last <= first:
            raise HloraError(f"{path}: empty or negative segment {start}-{end} s")
        if last > total + int(0.01 * sr):  # 10 ms of slack for rounded timestamps
            raise HloraError(f"{path}: segment {start:.2f}-{end:.2f} s ends after the file's end ({total / sr:.2f} s)")
        try:
            f.seek(first)
            x = f.read(min(last, total) - first, dtype="float32", always_2d=True)
        except (sf.LibsndfileError, RuntimeError) as e:
            raise HloraError(f"{path}: cannot decode audio ({e})") from e
    if x.shape[0] == 0:
        raise HloraError(f"{path}: audio file has no samples")
    x = x.mean(axis=1) if x.shape[1] > 1 else x[:, 0]
    if sr != SAMPLE_RATE:
        x = soxr.resample(x, sr, SAMPLE_RATE, quality="HQ")
    return np.ascontiguousarray(x, dtype=np.float32)
