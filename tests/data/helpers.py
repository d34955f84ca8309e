"""Audio fixtures made in the tests."""

from pathlib import Path

import numpy as np
import soundfile as sf


def tone(seconds: float, sr: int = 16000, channels: int = 1, freq: float = 440.0) -> np.ndarray:
    t = np.arange(int(seconds * sr)) / sr
    x = (0.3 * np.sin(2 * np.pi * freq * t)).astype(np.float32)
    return np.stack([x] * channels, axis=1) if channels > 1 else x


def write_audio(path: Path, seconds: float, sr: int = 16000, channels: int = 1, **kw) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    sf.write(str(path), tone(seconds, sr, channels), sr, **kw)
    return path
