"""A tiny two-language speech corpus synthesised in the test with espeak-ng (16 short sentences
per language, our own text), normalized, with its vocab."""

from __future__ import annotations

import shutil
import subprocess
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from hlora_cli.data.audio import load_audio
from hlora_cli.data.manifest import Utterance, validate, write_manifest
from hlora_cli.data.vocab import build_vocab
from tests.conftest import unavailable
from text_normalization import normalize

SENTENCES = {
    "en": [
        "the cat sat on the mat",
        "we walk to the park",
        "she reads a red book",
        "open the green door",
        "my dog likes warm milk",
        "the sun is very hot",
        "he has two blue cars",
        "birds sing in the tree",
        "they eat fresh bread",
        "the boat is on the lake",
        "a small fish swims",
        "please close the window",
        "the baby is asleep",
        "we play ball at noon",
        "it rains in the city",
        "the cake tastes sweet",
    ],
    "de": [
        "der hund schläft im haus",
        "wir trinken kalten tee",
        "das kind malt ein bild",
        "die katze ist sehr klein",
        "ich gehe heute nach hause",
        "der zug fährt schnell",
        "sie kauft frisches obst",
        "das wetter ist schön",
        "mein bruder spielt gitarre",
        "die blumen sind gelb",
        "wir lesen ein buch",
        "der vogel fliegt hoch",
        "das wasser ist kalt",
        "er schreibt einen brief",
        "die stadt ist groß",
        "morgen scheint die sonne",
    ],
}
VOICES = {"en": "en-us", "de": "de"}


def synthesize(out_dir: Path, per_language: int = 16, languages: tuple[str, ...] = ("en", "de")) -> Path:
    """Write WAVs and manifest.jsonl (text_norm filled) and vocab.json into out_dir; return the manifest."""
    espeak = shutil.which("espeak-ng")
    if espeak is None:
        unavailable("espeak-ng not installed (apt-get install espeak-ng)")
    out_dir.mkdir(parents=True, exist_ok=True)
    jobs = []
    for lang in languages:
        for i, text in enumerate(SENTENCES[lang][:per_language]):
            jobs.append((f"{lang}_{i:02d}", lang, text, out_dir / f"{lang}_{i:02d}.wav"))

    def run(job):
        utt_id, lang, text, wav = job
        if not wav.exists():
            subprocess.run([espeak, "-v", VOICES[lang], "-s", "150", "-w", str(wav), text], check=True)
        return Utterance(utt_id, str(wav), lang, text, text_norm=normalize(text, lang))

    with ThreadPoolExecutor(2) as pool:
        utts = list(pool.map(run, jobs))
    for u in utts:  # espeak writes 22.05 kHz; the loader resamples
        assert len(load_audio(u.audio)) > 8000
    utts, rejected = validate(utts)
    assert not rejected
    manifest = write_manifest(out_dir / "manifest.jsonl", utts)
    build_vocab(utts, prefix_tokens=True).save(out_dir / "vocab.json")
    return manifest
