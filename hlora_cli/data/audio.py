"""The one audio loader: anything libsndfile reads (wav, flac, ogg/vorbis/opus, mp3), segments read
by seeking (never the whole file), downmixed to mono and resampled to 16 kHz with soxr."""

from __future__ import annotations

import re
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import soundfile as sf
import soxr

from hlora_cli.errors import HloraError

SAMPLE_RATE = 16000


class TruncatedAudioWarning(UserWarning):
    """The file holds fewer frames than its header says (a copy cut short): it decodes, shorter."""


@dataclass(frozen=True)
class AudioInfo:
    sample_rate: int
    channels: int
    frames: int  # frames the file holds
    header_frames: int | None = None  # what the header says, where it says more than the file holds

    @property
    def duration(self) -> float:
        return self.frames / self.sample_rate

    @property
    def truncated(self) -> bool:
        return self.header_frames is not None and self.header_frames > self.frames


# libsndfile trims a WAV/AIFF data chunk that runs past the end of the file to what is there, and
# says so only in its log: "data : 32000 (should be 16000)" (bytes: declared, present).
_CUT_CHUNK = re.compile(r"^(?:data|SSND)\s*:\s*(\d+)\s*\(should be (\d+)\)", re.MULTILINE)
# Writers on a pipe cannot seek back to fill in the length and leave a huge placeholder
# (0xFFFFFFFF, 0x7FFFF000): such a file is streamed, not cut short.
_STREAMED = 0x7FFF0000


def _header_frames(f: sf.SoundFile) -> int | None:
    m = _CUT_CHUNK.search(f.extra_info)
    if m is None:
        return None
    declared, present = int(m.group(1)), int(m.group(2))
    if present <= 0 or declared <= present or declared >= _STREAMED:
        return None
    return f.frames * declared // present


def _open(path: Path) -> sf.SoundFile:
    if not path.exists():
        raise HloraError(f"{path}: audio file not found")
    try:
        return sf.SoundFile(str(path))
    except (sf.LibsndfileError, RuntimeError, TypeError) as e:
        raise HloraError(f"{path}: cannot read audio ({e})") from e


def segment_duration(audio: str, start: float | None, end: float | None) -> float:
    """Seconds of a manifest row's audio: end - start, reading the file's header for a missing end."""
    return (end if end is not None else audio_info(audio).duration) - (start or 0.0)


def audio_info(path: str | Path) -> AudioInfo:
    """Sample rate, channels and length, from the header alone."""
    with _open(Path(path)) as f:
        return AudioInfo(f.samplerate, f.channels, f.frames, _header_frames(f))


def _warn_truncated(path: Path, header_frames: int, frames: int, sr: int) -> None:
    warnings.warn(
        f"{path}: truncated audio: the header says {header_frames} frames ({header_frames / sr:.2f} s), "
        f"the file holds {frames} ({frames / sr:.2f} s); decoding what is there",
        TruncatedAudioWarning,
        stacklevel=3,
    )


def load_audio(path: str | Path, start: float | None = None, end: float | None = None) -> np.ndarray:
    """Samples of `path` (or of its segment start..end, in seconds) as 16 kHz mono float32.

    Raises HloraError naming the file for a missing, unreadable, corrupt or empty file, for a
    segment outside the file and for samples that are NaN or infinite. A file that holds fewer
    frames than its header says gives a TruncatedAudioWarning naming it (and both lengths)."""
    path = Path(path)
    with _open(path) as f:
        sr, total = f.samplerate, f.frames
        header_frames = _header_frames(f)
        if header_frames is not None:
            _warn_truncated(path, header_frames, total, sr)
        if total <= 0:
            raise HloraError(f"{path}: audio file has no samples")
        first = 0 if start is None else int(round(start * sr))
        last = total if end is None else int(round(end * sr))
        if first < 0 or last <= first:
            raise HloraError(f"{path}: {segment_text(start, end)} is empty or starts before the file")
        if last > total + int(0.01 * sr):  # 10 ms of slack for rounded timestamps
            raise HloraError(f"{path}: {segment_text(start, end)} ends after the file's end ({total / sr:.2f} s)")
        try:
            f.seek(first)
            wanted = min(last, total) - first
            x = f.read(wanted, dtype="float32", always_2d=True)
        except (sf.LibsndfileError, RuntimeError) as e:
            raise HloraError(f"{path}: cannot decode audio ({e})") from e
    if x.shape[0] == 0:
        raise HloraError(f"{path}: audio file has no samples")
    # the header promised frames that do not decode (10 ms of slack for compressed formats)
    if x.shape[0] < wanted - int(0.01 * sr) and header_frames is None:
        _warn_truncated(path, total, first + x.shape[0], sr)
    if not np.isfinite(x).all():
        raise HloraError(f"{path}: has non-finite samples (NaN or Inf); fix or remove the file")
    return mono_16k(x, sr)


def mono_16k(x: np.ndarray, sr: int) -> np.ndarray:
    """Samples of shape (frames, channels) at `sr` as 16 kHz mono float32: channels mixed down."""
    x = x.mean(axis=1) if x.shape[1] > 1 else x[:, 0]
    if sr != SAMPLE_RATE:
        x = soxr.resample(x, sr, SAMPLE_RATE, quality="HQ")
    return np.ascontiguousarray(x, dtype=np.float32)


def segment_text(start: float | None, end: float | None) -> str:
    """`segment from -1.00 s to 0.30 s`: times as a person reads them (a bare `-1.0-0.3` reads as a
    range of negative numbers, and float sums print 0.30000000000000004)."""
    a = "the start" if start is None else f"{start:.2f} s"
    b = "the end" if end is None else f"{end:.2f} s"
    return f"segment from {a} to {b}"
