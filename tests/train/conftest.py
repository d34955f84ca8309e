"""A tiny Whisper backbone saved as an HF directory, and a tiny synthetic corpus."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch

from hlora_cli.data.manifest import Utterance, write_manifest
from hlora_cli.data.vocab import build_vocab
from hlora_cli.train.config import load_config
from tests.conftest import TINY
from text_normalization import normalize

TEXTS = {"en": ["a cab", "bad", "a bee", "dab ace"], "de": ["ebbe", "da", "ade", "bade ab"]}


@pytest.fixture(scope="session")
def tiny_backbone(tmp_path_factory) -> Path:
    from transformers import WhisperConfig, WhisperFeatureExtractor, WhisperModel

    out = tmp_path_factory.mktemp("tiny-whisper")
    torch.manual_seed(0)
    WhisperModel(WhisperConfig(**TINY["whisper"])).save_pretrained(out)
    WhisperFeatureExtractor(feature_size=80).save_pretrained(out)
    return out


def make_corpus(root: Path, extra: list[Utterance] | None = None) -> tuple[Path, Path]:
    """8 utterances (2 languages), tones whose pitch depends on the text: learnable, fast."""
    root.mkdir(parents=True, exist_ok=True)
    utts = []
    for lang, texts in TEXTS.items():
        for i, text in enumerate(texts):
            rng = np.random.default_rng(len(utts))
            t = np.arange(int((0.6 + 0.1 * i) * 16000)) / 16000
            f0 = 200 + 40 * sum(map(ord, text)) % 400 + (300 if lang == "de" else 0)
            x = 0.3 * np.sin(2 * np.pi * f0 * t) + 0.01 * rng.standard_normal(len(t))
            path = root / f"{lang}{i}.wav"
            sf.write(str(path), x.astype(np.float32), 16000)
            utts.append(Utterance(f"{lang}{i}", str(path), lang, text, text_norm=normalize(text, lang)))
    build_vocab(utts, prefix_tokens=True).save(root / "vocab.json")
    manifest = write_manifest(root / "train.jsonl", utts + (extra or []))
    return manifest, root / "vocab.json"


def train_args(backbone: Path, manifest: Path, vocab: Path, out: Path, *extra: str) -> list[str]:
    return [
        "train",
        "--out",
        str(out),
        "--model-type",
        "hlora",
        "--k",
        "2",
        "--backbone",
        str(backbone),
        "--train",
        str(manifest),
        "--vocab",
        str(vocab),
        "--lora-rank",
        "4",
        "--lr",
        "5e-3",
        "--warmup-steps",
        "2",
        "--batch-seconds",
        "3",
        "--seed",
        "0",
        "--deterministic",
        *extra,
    ]


def config(backbone, manifest, vocab, **kw):
    base = dict(
        model_type="hlora",
        k=2,
        backbone=str(backbone),
        train=str(manifest),
        vocab=str(vocab),
        lora_rank=4,
        lr=5e-3,
        warmup_steps=2,
        batch_seconds=3.0,
        deterministic=True,
        max_steps=4,
        eval_every=2,
        save_every=2,
    )
    return load_config(None, {**base, **kw})


def losses(run_dir):
    rows = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    return {r["step"]: r["loss"] for r in rows if "loss" in r}


def records(run_dir: Path) -> list[dict]:
    return [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
