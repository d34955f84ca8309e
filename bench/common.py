"""Helpers shared by the benchmarks: interleaved timing and the BENCHMARKS.md sections."""

from __future__ import annotations

import json
import platform
import re
import statistics
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path

import torch

BENCHMARKS = Path(__file__).resolve().parents[1] / "BENCHMARKS.md"


def time_interleaved(
    fns: dict[str, Callable[[], object]], repeats: int, warmup: int = 1, sync: Callable[[], None] | None = None
) -> dict[str, float]:
    """Median seconds per call of each function, run round-robin so that drift in machine speed
    hits every variant alike. `sync` (torch.cuda.synchronize on a GPU) waits for queued kernels."""
    sync = sync or (lambda: None)
    for _ in range(warmup):
        for fn in fns.values():
            fn()
    times: dict[str, list[float]] = {name: [] for name in fns}
    for _ in range(repeats):
        for name, fn in fns.items():
            sync()
            t0 = time.perf_counter()
            fn()
            sync()
            times[name].append(time.perf_counter() - t0)
    return {name: statistics.median(ts) for name, ts in times.items()}


# dispatched, but no kernel launch of their own: views and metadata, and a scalar's read by the host
# (on a GPU a copy that waits for the queue: a sync, not a launch)
NOT_KERNELS = {"aten._unsafe_view", "aten.lift_fresh", "aten.detach", "aten.alias", "aten._local_scalar_dense"}


def dispatched(fn: Callable[[], object]) -> Counter:
    """The operators `fn` dispatches below autograd and autocast, by name, views left out: about
    one kernel launch each on a GPU (a launch-bound step's cost), counted the same on any device."""
    from torch.utils._python_dispatch import TorchDispatchMode

    seen: Counter = Counter()

    class Count(TorchDispatchMode):
        def __torch_dispatch__(self, func, types, args=(), kwargs=None):
            if not func.is_view and str(func.overloadpacket) not in NOT_KERNELS:
                seen[str(func.overloadpacket)] += 1
            return func(*args, **(kwargs or {}))

    with Count():
        fn()
    return seen


def count_kernels(fn: Callable[[], object]) -> int:
    return sum(dispatched(fn).values())


def machine() -> str:
    return f"{cpu()}, torch {torch.__version__}, {torch.get_num_threads()} threads"


CPU_FLAGS = ("avx2", "avx512f", "avx512_vnni", "avx512_bf16", "amx_bf16")  # what decides torch's CPU kernels


def cpu() -> str:
    """The CPU a figure came from: its model name and the flags that pick torch's kernels."""
    from hlora_cli.device import read_cpuinfo

    info = read_cpuinfo()
    if not info:
        return platform.processor() or platform.machine()
    name = next((line.split(":", 1)[1].strip() for line in info.splitlines() if line.startswith("model name")), "")
    flags = set(next((line.split(":", 1)[1].split() for line in info.splitlines() if line.startswith("flags")), []))
    have = " ".join(f for f in CPU_FLAGS if f in flags) or "no AVX2"
    return f"{name or platform.machine()} ({have}; torch kernels {torch.backends.cpu.get_cpu_capability()})"


def write_section(name: str, body: str, result: dict) -> None:
    """Replace (or append) the section of BENCHMARKS.md that belongs to benchmark `name`."""
    start, end = f"<!-- {name}:start -->", f"<!-- {name}:end -->"
    block = f"{start}\n{body.rstrip()}\n\n```json\n{json.dumps(result, indent=1)}\n```\n{end}"
    text = BENCHMARKS.read_text() if BENCHMARKS.exists() else "# Benchmarks\n\nWritten by the scripts in bench/.\n"
    if start in text:
        text = re.sub(re.escape(start) + r".*?" + re.escape(end), lambda _: block, text, flags=re.S)
    else:
        text = text.rstrip() + "\n\n" + block + "\n"
    BENCHMARKS.write_text(text)


def whisper_ref(source: str):
    """Whisper-base from `source` (its tokenizer too); where only its configuration and tokenizer were carried (a GPU
    machine: the weights are 277 MB), the same shapes with random weights: the same speed."""
    from hlora_cli.model import BackboneRef

    weights = any((Path(source) / f).exists() for f in ("model.safetensors", "pytorch_model.bin"))
    if weights:
        return BackboneRef("whisper", source=source, tokenizer=source)
    config = json.loads((Path(source) / "config.json").read_text())
    keep = ("num_mel_bins", "d_model", "encoder_layers", "encoder_attention_heads", "encoder_ffn_dim",
            "decoder_layers", "decoder_attention_heads", "decoder_ffn_dim", "max_source_positions",
            "max_target_positions", "vocab_size")  # fmt: skip
    return BackboneRef("whisper", config={k: config[k] for k in keep if k in config}, tokenizer=source)
