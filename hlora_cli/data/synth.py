"""Speech from text with Debian's TTS engines: espeak-ng (voice variants, speed, pitch) and Open JTalk
for Japanese. Training and test utterances use disjoint voice variants, so a test set measures
generalisation to unseen voices. Deterministic for a seed; runs `jobs` synthesisers at once."""

from __future__ import annotations

import random
import shutil
import subprocess
import tempfile
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import soundfile as sf

from hlora_cli.data.audio import SAMPLE_RATE, load_audio
from hlora_cli.data.manifest import Utterance
from hlora_cli.errors import HloraError

ESPEAK_VOICES = {
    "en": "en-us",
    "de": "de",
    "fr": "fr-fr",
    "es": "es",
    "pt": "pt-br",
    "ko": "ko",
    "it": "it",
    "zh": "cmn",
}
# Voice variants: training uses these ...
TRAIN_VARIANTS = ["m1", "m2", "m3", "m4", "f1", "f2", "f3"]
# ... and test only these, never heard in training.
TEST_VARIANTS = ["m5", "m6", "m7", "f4", "f5"]
JTALK_DIC = "/var/lib/mecab/dic/open-jtalk/naist-jdic"


@dataclass(frozen=True)
class Voice:
    engine: str  # "espeak" or "openjtalk"
    name: str  # espeak voice with variant, e.g. "en-us+m3"; Open JTalk: path of the .htsvoice
    speed: float  # espeak words per minute; Open JTalk speech rate
    pitch: float  # espeak pitch 0-99; Open JTalk additional half-tones


def pick_voice(lang: str, split: str, rng: random.Random, jtalk_voice: Path | None) -> Voice:
    if lang == "ja":
        if jtalk_voice is None:
            raise HloraError("Japanese needs Open JTalk and an HTS voice: pass --jtalk-voice FILE.htsvoice")
        # training and test differ in pitch range instead of voice (one voice is available)
        shift = rng.uniform(-4, 1) if split == "train" else rng.choice([rng.uniform(-7, -5), rng.uniform(2, 4)])
        return Voice("openjtalk", str(jtalk_voice), round(rng.uniform(0.85, 1.15), 2), round(shift, 1))
    if lang not in ESPEAK_VOICES:
        raise HloraError(f"no espeak-ng voice configured for language {lang} ({', '.join(ESPEAK_VOICES)} and ja)")
    variant = rng.choice(TRAIN_VARIANTS if split == "train" else TEST_VARIANTS)
    return Voice("espeak", f"{ESPEAK_VOICES[lang]}+{variant}", rng.randint(130, 185), rng.randint(30, 70))


def _run(cmd: list[str], what: str) -> None:
    r = subprocess.run(cmd, capture_output=True, text=True)
    if r.returncode != 0:
        raise HloraError(f"{what} failed: {r.stderr.strip()[-300:]}")


def _command(voice: Voice, text_file: Path, raw: Path) -> list[str]:
    """The synthesiser's command line (the text goes through a file: a sentence may start with
    "-" and would read as an option)."""
    if voice.engine == "espeak":
        exe = shutil.which("espeak-ng")
        hint = "apt-get install espeak-ng"
        args = ["-v", voice.name, "-s", str(int(voice.speed)), "-p", str(int(voice.pitch)), "-w", str(raw), "-f"]
    else:
        exe = shutil.which("open_jtalk")
        hint = "apt-get install open-jtalk open-jtalk-mecab-naist-jdic"
        args = ["-x", JTALK_DIC, "-m", voice.name, "-r", str(voice.speed), "-fm", str(voice.pitch), "-ow", str(raw)]
    if exe is None:
        raise HloraError(f"{voice.engine} not found: {hint}")
    return [exe, *args, str(text_file)]


def synthesize(text: str, voice: Voice, out: Path) -> None:
    """One 16 kHz mono WAV at `out`."""
    with tempfile.TemporaryDirectory() as tmp:
        raw, text_file = Path(tmp) / "raw.wav", Path(tmp) / "in.txt"
        text_file.write_text(text, encoding="utf-8")
        _run(_command(voice, text_file, raw), f"{voice.engine} ({voice.name})")
        if not raw.exists() or raw.stat().st_size <= 44:
            raise HloraError(f"{voice.engine} wrote no audio for {text[:50]!r} (voice {voice.name})")
        sf.write(str(out), load_audio(raw), SAMPLE_RATE, subtype="PCM_16")


def synth_corpus(
    texts: dict[str, list[str]],
    split: str,
    per_language: int,
    out_dir: Path,
    seed: int = 0,
    jobs: int = 2,
    jtalk_voice: Path | None = None,
    max_chars: int = 80,
    min_letters: int = 3,
) -> list[Utterance]:
    """`per_language` utterances per language from its sentences (short ones first choice; a
    sentence repeats with other voices when there are too few). Sentences with fewer than
    `min_letters` letters (treebank lines such as "?" or "-----") are left out: they give empty
    transcripts after normalisation. Existing WAVs are kept."""
    if split not in ("train", "test"):
        raise HloraError(f"split must be train or test, got {split}")
    out_dir.mkdir(parents=True, exist_ok=True)
    jobs_list: list[tuple[Utterance, Voice]] = []
    for lang, lines in sorted(texts.items()):
        rng = random.Random(f"{seed}-{lang}-{split}")
        usable = [s.strip() for s in lines if sum(c.isalpha() for c in s) >= min_letters]
        pool = [s for s in usable if len(s) <= max_chars] or usable
        if not pool:
            raise HloraError(f"no sentence with at least {min_letters} letters for language {lang}")
        rng.shuffle(pool)
        for i in range(per_language):
            text = pool[i % len(pool)]
            voice = pick_voice(lang, split, rng, jtalk_voice)
            utt_id = f"{lang}_{split}_{i:05d}"
            jobs_list.append((Utterance(utt_id, str(out_dir / f"{utt_id}.wav"), lang, text), voice))

    def run(job: tuple[Utterance, Voice]) -> Utterance:
        utt, voice = job
        if not Path(utt.audio).exists():
            synthesize(utt.text, voice, Path(utt.audio))
        return utt

    with ThreadPoolExecutor(max(1, jobs)) as pool:
        return list(pool.map(run, jobs_list))
