"""The compiled forward (`hlora decode --compile`, `hlora train --compile`): torch.compile of the
model core's forward, with CUDA graphs on a GPU (mode reduce-overhead), where a small encoder
otherwise waits on kernel launches.

Shapes are bucketed, so a decode compiles a few graphs rather than one per batch: the batch is padded
to a power of two rows and the time axis to whole seconds (padded frames are masked as any padding
is); the padding rows are dropped from the output. The graph must not ask the host anything (a
CUDA graph replays without it), so the merged path's loop, one matmul per language the batch holds,
has no place in it. Where torch has a grouped matmul for the dtype and device (bf16 on a CPU, or a GPU
of compute capability 9 or 10: lora.grouped_routing), the routed layers keep their merged weights
and each runs as one grouped matmul over the batch the model core sorted by language, and the CTC
heads likewise; elsewhere routed LoRA stay unmerged (each row's adapter in one batched matmul) and
every CTC head runs, each row keeping its own. A training step (on a GPU) compiles its backward as well
(AOTAutograd); its padded frames are masked, so they get no gradient.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import fields, replace
from typing import Any

import torch
from torch import nn

from hlora_cli.data.features import Features
from hlora_cli.errors import HloraError
from hlora_cli.model.output import ModelOutput

MEL_FRAMES_PER_SECOND = 100  # Whisper's log-mel hop of 10 ms
SAMPLES_PER_SECOND = 16000


def compile_model(
    model: nn.Module, device: torch.device, dynamic: bool = False, backend: str | Callable = "inductor"
) -> nn.Module:
    """The model core's forward compiled for static (or, `dynamic`, symbolic) shapes; CUDA graphs
    on a GPU. `backend` other than inductor: the tests' (aot_eager traces what inductor would
    compile, and runs it eagerly)."""
    if device.type == "cuda" and backend == "inductor":
        return torch.compile(model, mode="reduce-overhead", dynamic=dynamic)
    return torch.compile(model, dynamic=dynamic, backend=backend)


def bucket(feats: Features, pad_rows: bool = True) -> tuple[Features, int]:
    """`feats` padded to a bucketed shape (time to whole seconds; rows to a power of two unless
    `pad_rows` is False) and its true number of rows. Padding rows are full-length silence: they
    cost what a real row does."""
    rows, t = feats.values.shape[0], feats.values.shape[-1]
    step = MEL_FRAMES_PER_SECOND if feats.values.dim() == 3 else SAMPLES_PER_SECOND
    width = -(-t // step) * step
    padded_rows = 1 << (rows - 1).bit_length() if pad_rows else rows
    if width == t and padded_rows == rows:  # already bucketed (the trainer pads before a teacher reads)
        return feats, rows
    values = nn.functional.pad(feats.values, (0, width - t))
    lengths = feats.lengths
    if padded_rows > rows:
        values = torch.cat([values, values.new_zeros(padded_rows - rows, *values.shape[1:])])
        lengths = torch.cat([lengths, lengths.new_full((padded_rows - rows,), width)])
    return Features(values, lengths), rows


def unbucket(out: ModelOutput, rows: int) -> ModelOutput:
    """The first `rows` rows of every batched output, copied: a CUDA graph overwrites its outputs
    on its next replay."""
    cut = {}
    for f in fields(out):
        v = getattr(out, f.name)
        if isinstance(v, torch.Tensor):
            cut[f.name] = v[:rows].clone()
        elif isinstance(v, list):
            cut[f.name] = [t[:rows].clone() for t in v]
    return replace(out, **cut)


class CompiledForward:
    """`model`'s forward compiled for bucketed shapes, called as the model is (the same arguments,
    the same ModelOutput, its rows the caller's); anything else is read from the model itself.

    Decoding: static shapes, rows padded to a power of two, so a few graphs serve every batch.
    Training (`for_training`): symbolic shapes (a training batch's rows and length both vary; a
    static graph per shape would compile for minutes each): one graph per routing mode serves
    every batch shape (and one more for a lone row, which torch specialises); time padded to whole
    seconds, rows left as they are (padding rows would be computed and thrown away on every step).
    CUDA graphs record one replay per distinct shape either way: in training one per (rows,
    seconds) pair met, each a warm-up and a recording, their memory pooled (the cost not yet
    measured on a GPU)."""

    def __init__(
        self,
        model: nn.Module,
        device: torch.device,
        for_training: bool = False,
        backend: str | Callable = "inductor",
    ) -> None:
        if for_training and device.type == "cpu" and backend == "inductor":
            # torch 2.13's inductor on a CPU: its vectorised C++ computed LoRA gradients up to 100 %
            # off for one-row batches (the forward right), its scalar C++ failed to compile the
            # HuBERT step with symbolic shapes, and compiled steps ran slower than eager ones
            raise HloraError(
                "--compile trains on a CUDA GPU: on a CPU torch's compiler gave wrong gradients for "
                "one-utterance batches and ran slower than eager training (BENCHMARKS.md); train with --no-compile"
            )
        self.model = model
        self.for_training = for_training
        self.compiled = compile_model(model, device, dynamic=for_training, backend=backend)

    def __getattr__(self, name: str) -> Any:  # config, readout, languages ...: the model's own
        if name == "model":  # not set yet (a copy being made): no endless lookup
            raise AttributeError(name)
        return getattr(self.model, name)

    def __call__(
        self, feats: Features, routing_mode: str = "predicted", langs: torch.Tensor | None = None, hidden: bool = False
    ) -> ModelOutput:
        padded, rows = bucket(feats, pad_rows=not self.for_training)
        if langs is not None and len(langs) < padded.values.shape[0]:  # padding rows routed as language 0
            langs = torch.cat([langs, langs.new_zeros(padded.values.shape[0] - len(langs))])
        return unbucket(self.compiled(padded, routing_mode, langs, hidden=hidden), rows)
