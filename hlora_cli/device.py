"""Where the model runs and at which precision: one place for `--device` and `--dtype`."""

from __future__ import annotations

import contextlib
import os
import sys
import warnings
from collections.abc import Callable
from pathlib import Path

import torch

from hlora_cli.errors import HloraError

DTYPES = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}
DTYPE_NAMES = {dtype: name for name, dtype in DTYPES.items()}


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


def check_dtype(name: str, device: torch.device, say: Callable[[str], None] | None = None) -> torch.dtype:
    """--dtype NAME on `device`: auto picks (and says on stderr, through `say`, which and why), the
    others are checked."""
    if name == "auto":
        chosen, why = auto_dtype(device)
        (say or say_on_stderr)(f"dtype {chosen}: {why}")
        return DTYPES[chosen]
    if name not in DTYPES:
        raise HloraError(f"--dtype {name}: choose auto, {', '.join(DTYPES)}")
    if name == "fp16" and device.type != "cuda":
        raise HloraError("--dtype fp16 runs on CUDA only: use bf16 or fp32 on the CPU")
    if name == "bf16" and device.type == "cpu":
        warn_if_bf16_emulated()
    return DTYPES[name]


def auto_dtype(device: torch.device) -> tuple[str, str]:
    """What --dtype auto means on `device`, and why: bf16 where the hardware computes it natively
    (a CUDA device with bf16, a CPU with AVX512-BF16 or AMX), fp32 elsewhere. On an AVX2-only CPU
    bf16 is emulated and measured 7x slower than fp32 (BENCHMARKS.md); with AVX512-BF16, 2x faster."""
    if device.type == "cuda":
        if torch.cuda.is_bf16_supported():
            return "bf16", f"{torch.cuda.get_device_name(device)} computes bf16"
        return "fp32", f"{torch.cuda.get_device_name(device)} has no bf16"
    forced = os.environ.get(BF16_ENV, "").strip()
    if forced:
        if forced not in ("0", "1"):
            raise HloraError(f"{BF16_ENV}={forced}: set it to 0 or 1")
        return ("bf16" if forced == "1" else "fp32"), f"{BF16_ENV}={forced} says so"
    native = cpu_bf16_feature()
    kernels = torch.backends.cpu.get_cpu_capability()
    if native and not kernels.startswith("AVX512"):  # ATEN_CPU_CAPABILITY chose older kernels
        return "fp32", f"torch runs its {kernels} kernels (ATEN_CPU_CAPABILITY), which emulate bf16"
    if native:
        return "bf16", f"the CPU has {native}"
    return "fp32", "the CPU has no bf16 instructions (AVX512-BF16 or AMX): bf16 would be emulated"


# HLORA_CPU_BF16=0 or 1 overrides the CPU's own answer for auto (the tests' exact figures were
# measured in fp32; a user may keep fp32 on a bf16 CPU to repeat a trajectory from another machine).
BF16_ENV = "HLORA_CPU_BF16"
BF16_FLAGS = ("amx_bf16", "avx512_bf16")  # /proc/cpuinfo names, the faster first


def read_cpuinfo() -> str:
    """The text of /proc/cpuinfo ("" where there is none: macOS, Windows)."""
    try:
        return Path("/proc/cpuinfo").read_text()
    except OSError:
        return ""


def cpu_bf16_feature(cpuinfo: str | None = None) -> str | None:
    """The CPU feature that computes bf16 natively (`amx_bf16`, `avx512_bf16`), or None. Read from
    the CPU flags (`cpuinfo`: the text of /proc/cpuinfo; read here when None), else from oneDNN."""
    cpuinfo = read_cpuinfo() if cpuinfo is None else cpuinfo
    flags = set(cpuinfo.split())
    for flag in BF16_FLAGS:
        if flag in flags:
            return flag
    if cpuinfo:
        return None
    try:  # no /proc (macOS, Windows): what oneDNN reports
        return "bf16 (oneDNN)" if torch.ops.mkldnn._is_mkldnn_bf16_supported() else None
    except (AttributeError, RuntimeError):
        return None


def say_on_stderr(line: str) -> None:
    """One line for the user beside the command's output (a dtype chosen, say)."""
    print(line, file=sys.stderr, flush=True)


def warn_if_bf16_emulated() -> None:
    """bf16 on a CPU without bf16 instructions (AVX512-BF16, AMX) is emulated: measured 7x slower
    than fp32 decoding and 50x slower training on an AVX2 machine (BENCHMARKS.md). Say so once."""
    if cpu_bf16_feature() is None:
        warnings.warn(
            f"this CPU has no bf16 instructions (torch sees {torch.backends.cpu.get_cpu_capability()}): bf16 is "
            "emulated here and runs several times slower than fp32",
            stacklevel=2,
        )


def usable_cores() -> int:
    """The cores this process may run on (its affinity: a container's or a job scheduler's share)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # macOS, Windows
        return os.cpu_count() or 1


def fit_threads(workers: int, processes: int = 1) -> int:
    """Set torch's intra-op threads so that they and `workers` loader processes (each of
    `processes` processes on this machine) fit the usable cores; a user's OMP_NUM_THREADS stays.
    More threads than cores make each parallel region wait for a descheduled thread: on a shared
    2-core machine that cost training 12x instead of the 2x a fair share costs (BENCHMARKS.md)."""
    if os.environ.get("OMP_NUM_THREADS"):
        return torch.get_num_threads()
    threads = max(1, usable_cores() // max(1, processes) - workers)
    torch.set_num_threads(threads)
    return threads


def autocast(device: torch.device, dtype: torch.dtype) -> contextlib.AbstractContextManager:
    """Mixed precision for the matrix products (weights stay fp32); nothing for fp32."""
    if dtype == torch.float32:
        return contextlib.nullcontext()
    return torch.autocast(device.type, dtype=dtype)
