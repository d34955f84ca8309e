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


def kaldi_dir(root, pipe: bool = False):
    d = root / "data"
    write_audio(root / "wav" / "rec1.wav", 4.0)
    write_audio(root / "wav" / "rec2.wav", 3.0, sr=8000, channels=2)
    rec2 = f"sox {root}/wav/rec2.wav -t wav - |" if pipe else f"{root}/wav/rec2.wav"
    d.mkdir(parents=True)
    (d / "wav.scp").write_text(f"rec1 {root}/wav/rec1.wav\nrec2 {rec2}\n")
    (d / "segments").write_text("en_u1 rec1 0.00 1.50\nen_u2 rec1 1.50 4.00\nde_u3 rec2 0.5 2.5\nde_u4 rec2 2.0 9.0\n")
    (d / "text").write_text(
        "en_u1 Hello there.\nen_u2 General Kenobi!\nde_u3 Guten Tag\nde_u4 zu lang\nen_u5 no segment\n"
    )
    (d / "utt2spk").write_text("en_u1 spkA\nen_u2 spkB\nde_u3 spkC\nde_u4 spkC\nen_u5 spkA\n")
    return d


def mlc_tree(root):
    for rel, seconds, lines in [
        ("English/American/0517_007", 6.0, ["0.50 2.25 A Hello, how are you?", "2.40 5.90 B I'm fine, thanks."]),
        ("Japanese/0011_002", 4.0, ["0.00 1.80 O1 こんにちは。", "1.90 3.95 O2 元気ですか"]),
    ]:
        write_audio(root / f"{rel}.wav", seconds)
        (root / f"{rel}.txt").write_text("\n".join(lines) + "\n", encoding="utf-8")
