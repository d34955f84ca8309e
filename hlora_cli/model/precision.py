"""Frozen weights kept in the compute dtype for a bf16 (or fp16) training.

Autocast caches its cast of a weight only for trainable leaves: a frozen backbone weight is cast
anew on every call, one copy kernel per frozen linear or convolution per forward (and an fp32
master nobody updates). Casting the frozen weights once gives every matmul the same operands,
rounded by the same cast, so the numbers are unchanged; the step loses those copies and the
backbone half its memory.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn.utils import parametrize

CAST_MODULES = (nn.Linear, nn.Conv1d, nn.Conv2d)


def keep_frozen_in(module: nn.Module, dtype: torch.dtype) -> int:
    """Cast the weight and bias of every frozen linear / convolution in `module` to `dtype`;
    returns how many were cast. A weight shared with a module autocast does not cast (Whisper's
    output projection is its token embedding) gets its own cast copy, so the other keeps its fp32
    values. Parametrised weights (weight norm) are computed per call and stay as they are."""
    if dtype not in (torch.bfloat16, torch.float16):
        return 0
    n = 0
    for m in module.modules():
        if not isinstance(m, CAST_MODULES) or parametrize.is_parametrized(m):
            continue
        params = [p for p in (m.weight, m.bias) if p is not None]
        if any(p.requires_grad for p in params) or params[0].dtype == dtype:
            continue
        m.weight = nn.Parameter(m.weight.detach().to(dtype), requires_grad=False)
        if m.bias is not None:
            m.bias = nn.Parameter(m.bias.detach().to(dtype), requires_grad=False)
        n += 1
    return n
