"""The compiled decode path (`--compile`): torch.compile of the model core's forward, with CUDA
graphs on a GPU (mode reduce-overhead), where a small encoder otherwise waits on kernel launches.

Shapes are bucketed, so a decode compiles a few graphs rather than one per batch: the batch is padded
to a power of two rows and the time axis to whole seconds (padded frames are masked as any padding
is); the padding rows are dropped from the output. Routed LoRA stay unmerged (each row's adapter in
one batched matmul) and every CTC head runs, each row keeping its own: the merged path's one matmul
per language present needs the host to know which languages a batch holds, which stops the GPU
queue once per routed layer.
"""

from __future__ import annotations

from dataclasses import fields, replace

import torch
from torch import nn

from hlora_cli.data.features import Features
from hlora_cli.model.output import ModelOutput

MEL_FRAMES_PER_SECOND = 100  # Whisper's log-mel hop of 10 ms
SAMPLES_PER_SECOND = 16000


def compile_model(model: nn.Module, device: torch.device) -> nn.Module:
    """The model core's forward compiled for static shapes; CUDA graphs on a GPU."""
    mode = "reduce-overhead" if device.type == "cuda" else None
    return torch.compile(model, mode=mode, dynamic=False)


def bucket(feats: Features) -> tuple[Features, int]:
    """`feats` padded to a bucketed shape (rows to a power of two, time to whole seconds) and its
    true number of rows. Padding rows are full-length silence: they cost what a real row does."""
    rows, t = feats.values.shape[0], feats.values.shape[-1]
    step = MEL_FRAMES_PER_SECOND if feats.values.dim() == 3 else SAMPLES_PER_SECOND
    width = -(-t // step) * step
    values = nn.functional.pad(feats.values, (0, width - t))
    lengths = feats.lengths
    padded_rows = 1 << (rows - 1).bit_length()
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
