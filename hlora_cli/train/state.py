"""The run's resumable state: RUN_DIR/checkpoint.pt (trainable weights, optimizer, scheduler,
sampler position, RNG states, step, counters), written atomically; and model directories
(RUN_DIR/best, RUN_DIR/last) swapped in whole."""

from __future__ import annotations

import os
import random
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import torch

from hlora_cli.files import atomic_write
from hlora_cli.model import HLoRAModel, save_model

CHECKPOINT = "checkpoint.pt"


def rng_state() -> dict[str, Any]:
    state = {"python": random.getstate(), "numpy": np.random.get_state(), "torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict[str, Any]) -> None:
    random.setstate(state["python"])
    np.random.set_state(state["numpy"])
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def save_checkpoint(run_dir: Path, state: dict[str, Any]) -> None:
    atomic_write(run_dir / CHECKPOINT, lambda p: torch.save(state, p))


def load_checkpoint(run_dir: Path) -> dict[str, Any]:
    return torch.load(run_dir / CHECKPOINT, map_location="cpu", weights_only=False)


def save_model_dir(model: HLoRAModel, target: Path) -> None:
    """Write a model directory beside `target`, then swap it in: a crash leaves either the old or
    the new one (or both, the old as TARGET.old), never a half-written one."""
    tmp, old = target.with_name(target.name + ".tmp"), target.with_name(target.name + ".old")
    shutil.rmtree(tmp, ignore_errors=True)
    save_model(model, tmp)
    if target.exists():
        shutil.rmtree(old, ignore_errors=True)
        os.replace(target, old)
    os.replace(tmp, target)
    shutil.rmtree(old, ignore_errors=True)
