"""Helpers and fixtures shared by the tests of this folder."""

from __future__ import annotations

from pathlib import Path

import torch

from hlora_cli.model import build_model, save_model
from tests.conftest import randomize_adapters, tiny_config

UNK = 2  # index of <unk> in the tiny inventories


def tiny_model_dir(kind: str, root: Path, model_type: str = "hlora", **kw) -> Path:
    """A tiny model with random adapters and heads (so that LoRA and routing change the output), whose
    heads never emit <unk> (transformers' tokenizer keeps it as text; hlora drops it)."""
    model = build_model(tiny_config(kind, model_type, **kw)).eval()
    randomize_adapters(model)
    with torch.no_grad():
        for m in model.lora_modules():  # a mole's experts are frozen: randomize_adapters leaves them
            torch.nn.init.normal_(m.lora_B, std=0.1)
        for head in model.readout.heads:
            head.bias[UNK] = -100.0
    return save_model(model, root / f"{kind}_{model_type}")
