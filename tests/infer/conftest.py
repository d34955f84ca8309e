"""Helpers and fixtures shared by the tests of this folder."""

import pytest
import soundfile as sf

from hlora_cli.infer.inputs import Item
from hlora_cli.model import build_model
from tests.conftest import randomize_adapters, tiny_config, waves


@pytest.fixture
def items(tmp_path):
    out = []
    for i, w in enumerate(waves([0.9, 0.5, 1.2, 0.7, 0.6], seed=11)):
        sf.write(str(tmp_path / f"u{i}.wav"), w, 16000)
        out.append(Item(f"u{i}", str(tmp_path / f"u{i}.wav")))
    return out


def model(model_type, seed):
    m = build_model(tiny_config("whisper", model_type)).eval()
    randomize_adapters(m, seed=seed, scale=0.3)
    return m


def with_langs(items, langs):
    return [Item(it.id, it.audio, lang=lang) for it, lang in zip(items, langs, strict=True)]
