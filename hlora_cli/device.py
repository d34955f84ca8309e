"""Where the model runs and at which precision: one place for `--device` and `--dtype`."""

from __future__ import annotations

import contextlib
import warnings

import torch

from hlora_cli.errors import HloraError

DTYPES = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}


def resolve_device(name: str) -> torch.device:
    """auto (the GPU when there is one), cpu, cuda or cuda:N. A CUDA device always comes back with
    its index (the current device for plain "cuda"): torch.cuda.set_device refuses one without."""
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    try:
        device = torch.device(name)
    except RuntimeError as e:
        raise HloraError(f"--device {name}: not a device (auto, cpu, cuda or cuda:N)") from e
    if device.type not in ("cpu", "cuda"):
        raise HloraError(f"--device {name}: choose auto, cpu, cuda or cuda:N")
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise HloraError(f"--device {name}: CUDA is not available on this machine")
        if device.index is not None and device.index >= torch.cuda.device_count():
            raise HloraError(f"--device {name}: this machine has {torch.cuda.device_count()} CUDA device(s)")
        if device.index is None:
            device = torch.device("cuda", torch.cuda.current_device())
    return device


def check_dtype(name: str, device: torch.device) -> torch.dtype:
    if name not in DTYPES:
        raise HloraError(f"--dtype {name}: choose {', '.join(DTYPES)}")
    if name == "fp16" and device.type != "cuda":
        raise HloraError("--dtype fp16 runs on CUDA only: use bf16 or fp32 on the CPU")
    if name == "bf16" and device.type == "cpu":
        warn_if_bf16_emulated()
    return DTYPES[name]


def warn_if_bf16_emulated() -> None:
    """bf16 on a CPU without bf16 instructions (AVX512-BF16, AMX) is emulated: measured 7x slower
    than fp32 decoding and 50x slower training on an AVX2 machine (BENCHMARKS.md). Say so once."""
    try:
        native = bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except (AttributeError, RuntimeError):
        return
    if not native:
        warnings.warn(
            f"this CPU has no bf16 instructions (torch sees {torch.backends.cpu.get_cpu_capability()}): bf16 is "
            "emulated here and runs several times slower than fp32",
            stacklevel=2,
        )


def autocast(device: torch.device, dtype: torch.dtype) -> contextlib.AbstractContextManager:
    """Mixed precision for the matrix products (weights stay fp32); nothing for fp32."""
    if dtype == torch.float32:
        return contextlib.nullcontext()
    return torch.autocast(device.type, dtype=dtype)
