"""A small corpus laid out exactly as the MLC-SLM 2025 release, for the recipe's smoke run.

    synth_layout.py MANIFEST OUT_DIR [--per-recording N] [--seed S]

MANIFEST is a `hlora prepare synth` manifest (short clips). Its clips, per language and in order,
are joined N at a time into two-speaker "conversations" (speakers A and B take turns, with
silences between turns) and written as the release writes them: OUT_DIR/English/Indian/0001_001.wav
and .txt for English, OUT_DIR/French/..., OUT_DIR/German/..., OUT_DIR/Japanese/...,
OUT_DIR/Korean/...; 16 kHz 16-bit mono WAV; one segment a line, `START END SPEAKER TEXT` in seconds.
`hlora prepare mlc-slm` must read it back to the clips' texts and times (the recipe checks).
"""

from __future__ import annotations

import argparse
from collections import defaultdict
from pathlib import Path

import numpy as np
import soundfile as sf

from hlora_cli.data.audio import SAMPLE_RATE, load_audio
from hlora_cli.data.importers.mlc_slm import LANGUAGES
from hlora_cli.data.manifest import read_manifest

# Where each language lies in the release: the inverse of the importer's folder names; English
# is the paper's English-Indian.
FOLDERS = {code: (name.title(),) for name, code in LANGUAGES.items()} | {"en": ("English", "Indian")}


def layout(manifest: Path, out: Path, per_recording: int, seed: int) -> None:
    rng = np.random.default_rng(seed)
    by_lang = defaultdict(list)
    for u in read_manifest(manifest):
        by_lang[u.lang].append(u)
    n_recordings = 0
    for lang, utts in sorted(by_lang.items()):
        if lang not in FOLDERS:
            raise SystemExit(f"{manifest}: language {lang} has no MLC-SLM folder")
        folder = out.joinpath(*FOLDERS[lang])
        folder.mkdir(parents=True, exist_ok=True)
        for n in range(0, len(utts), per_recording):
            name = f"{n // per_recording + 1:04d}_001"
            audio, lines, t = [], [], 0.0
            for i, u in enumerate(utts[n : n + per_recording]):
                gap = np.zeros(int(rng.uniform(0.3, 0.8) * SAMPLE_RATE), dtype=np.float32)
                clip = load_audio(u.audio, u.start, u.end)
                start = t + len(gap) / SAMPLE_RATE
                end = start + len(clip) / SAMPLE_RATE
                lines.append(f"{start:.3f} {end:.3f} {'AB'[i % 2]} {u.text}\n")
                audio += [gap, clip]
                t = end
            audio.append(np.zeros(SAMPLE_RATE // 2, dtype=np.float32))
            sf.write(str(folder / f"{name}.wav"), np.concatenate(audio), SAMPLE_RATE, subtype="PCM_16")
            (folder / f"{name}.txt").write_text("".join(lines), encoding="utf-8")
            n_recordings += 1
    print(f"{out}: {n_recordings} recordings in the MLC-SLM layout")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("manifest", type=Path)
    ap.add_argument("out", type=Path)
    ap.add_argument("--per-recording", type=int, default=4)
    ap.add_argument("--seed", type=int, default=0)
    a = ap.parse_args()
    layout(a.manifest, a.out, a.per_recording, a.seed)


if __name__ == "__main__":
    main()
