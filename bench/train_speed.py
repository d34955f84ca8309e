"""Training cost: HLoRA (k=3, k=9: shared lower layers) against the LoRA-free, fully fine-tuned
`ctc` model type (the paper's mHuBERT-CTC), on the same batch; and the LoRA-experts systems: one
expert (one language, rank 64, no routing), the distilled student (rank 256) trained plainly, and
the same student with layer-wise distillation (4 rank-64 experts as the teacher forward).

Each variant runs in its own child process, so its peak resident memory (CPU) or peak allocated
memory (CUDA) is its own; children run one after another in this one run. Reported: median
seconds per optimizer step (forward + backward + AdamW) and peak memory.

Usage: python bench/train_speed.py [--quick] [--whisper DIR] [--device cpu|cuda]
The last line printed is one JSON object; the results also go to BENCHMARKS.md.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

HUBERT_BASE = {"hidden_size": 768, "num_hidden_layers": 12, "num_attention_heads": 12, "intermediate_size": 3072}
LANGS = ["en", "de", "fr", "ja"]
# Dense bf16 tensor-core peaks (vendor data sheets, FLOP/s): model FLOP utilisation is measured against these.
PEAK_BF16 = {"H200": 989.4e12, "H100": 989.4e12, "A100": 312e12, "L40S": 362e12, "A10": 125e12}


def peak_flops(device: str) -> float | None:
    """The GPU's dense bf16 peak, or None (a CPU, or a GPU not in PEAK_BF16)."""
    import torch

    if not device.startswith("cuda"):
        return None
    name = torch.cuda.get_device_name(torch.device(device))
    return next((v for k, v in PEAK_BF16.items() if k in name), None)


def step_flops(step) -> int:
    """Floating-point operations of one call of `step` (forward and backward), as torch counts them."""
    from torch.utils.flop_counter import FlopCounterMode

    with FlopCounterMode(display=False) as counter:
        step()
    return counter.get_total_flops()


def report(args, times: list[float], flops: int, trainable: int, accounted: int | None) -> None:
    import torch

    peak = torch.cuda.max_memory_allocated() / 2**20 if args.device.startswith("cuda") else None
    step_s = statistics.median(times)
    print(
        json.dumps(
            {
                "step_s": step_s,
                "peak_mb": peak,
                "trainable": trainable,
                "accounted_mb": (accounted or 0) / 2**20,
                "audio_s_per_s": args.batch * args.seconds / step_s,
                "tflops": flops / step_s / 1e12,
                "mfu": flops / step_s / peak if (peak := peak_flops(args.device)) else None,
                "gpu_busy": getattr(args, "gpu_busy", None),
                "kernels": getattr(args, "kernels", None),
                "update_kernels": getattr(args, "update_kernels", None),
            }
        )
    )


def training_batch(args: argparse.Namespace, model, device, n_langs: int):
    """What every variant's step trains on: its trainable parameters, AdamW over them, the seeded
    generator (its targets are drawn next), one batch of `args.batch` x `args.seconds` of noise on
    the device, and the languages cycled over the batch."""
    import numpy as np
    import torch

    params = [p for p in model.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(params, lr=1e-5, fused=device.type == "cuda")  # as the trainer's
    rng = np.random.default_rng(0)
    wavs = [(0.1 * rng.standard_normal(int(args.seconds * 16000))).astype(np.float32) for _ in range(args.batch)]
    feats = model.prepare(wavs).to(device)
    langs = torch.tensor([i % n_langs for i in range(args.batch)], device=device)
    return params, opt, rng, feats, langs


def seq2seq_child(args: argparse.Namespace, ref) -> None:
    """The whole Whisper-base as `hlora train --backbone-mode seq2seq` trains it (HLoRA k=3: shared
    LoRA below, routed LoRA in the top encoder layers and the decoder): encoder on the true-length
    input, the decoder teacher-forced on 3 tokens a second."""
    import torch

    from hlora_cli.model import LoRAConfig, ModelConfig, build_model
    from hlora_cli.model.precision import keep_frozen_in

    cfg = ModelConfig(
        "hlora", ref, LANGS, k=3, backbone_mode="seq2seq", encoder_input="true-length",
        lora=LoRAConfig(rank=32, alpha=64.0),
    )  # fmt: skip
    device = torch.device(args.device)
    model = build_model(cfg).to(device).train()
    if args.bf16 and not args.autocast_casts:  # as the trainer does
        keep_frozen_in(model.backbone, torch.bfloat16)
    params, opt, rng, feats, langs = training_batch(args, model, device, len(LANGS))
    targets = [[int(x) for x in rng.integers(300, 20000, size=int(args.seconds * 3))] for _ in range(args.batch)]
    dtype = torch.bfloat16 if args.bf16 else torch.float32
    encoder = [model]  # or its compiled forward (--compile); the decoder stays eager

    def forward_backward():
        with torch.autocast(device.type, dtype=dtype, enabled=args.bf16):
            out = encoder[0](feats, "oracle", langs)
            logits, labels, _ = model.readout.teacher_forced(model, out, targets, False)
        loss = torch.nn.functional.cross_entropy(
            logits.float().flatten(0, 1), labels.to(device).flatten(), ignore_index=-100
        )
        loss.backward()

    times, flops = timed_steps(args, device, forward_backward, opt, compile_swap(args, encoder, device))
    report(args, times, flops, sum(p.numel() for p in params), None)


def compile_swap(args: argparse.Namespace, forward: list, device):
    """--compile: what swaps forward[0] (the model) for its compiled training forward, as `hlora
    train --compile` does (model/compiled.py); else None."""
    if not args.compile:
        return None
    from hlora_cli.model.compiled import CompiledForward

    def swap() -> None:
        forward[0] = CompiledForward(forward[0], device, for_training=True)

    return swap


def textbook_lora() -> None:
    """The LoRA forward as usually written (and as hlora wrote it before): index each row's
    adapter, multiply by the scaling, add; autocast casts x for each product."""
    import torch

    from hlora_cli.model.lora import LoRALinear

    hlora_forward = LoRALinear.forward

    def forward(self, x):  # merged weights and soft routing: hlora's own (not what is compared)
        if self.merged or self.weights is not None or self.merged_weights is not None:
            return hlora_forward(self, x)
        if not self.routed:
            return self.base(x) + self.scaling * (self.dropout(x) @ self.lora_A[0].T) @ self.lora_B[0].T
        a, b = self.lora_A[self.route], self.lora_B[self.route]
        return self.base(x) + self.scaling * torch.bmm(torch.bmm(self.dropout(x), a.transpose(1, 2)), b.transpose(1, 2))

    LoRALinear.forward = forward


def profile_step(args, step) -> float:
    """One step under torch.profiler: its busiest operators go to PROFILE_DIR, and the share of the
    step's wall time the GPU spends in kernels comes back (low: the host's launches are the limit)."""
    import torch
    from torch.profiler import ProfilerActivity, profile

    torch.cuda.synchronize()
    with profile(activities=[ProfilerActivity.CPU, ProfilerActivity.CUDA]) as prof:
        t0 = time.perf_counter()
        step()
        torch.cuda.synchronize()
        wall = time.perf_counter() - t0
    events = prof.key_averages()
    # kernels only: an operator's row also carries the device time of the kernels it launched
    kernels = sum(e.self_device_time_total for e in events if e.device_type == torch.autograd.DeviceType.CUDA) / 1e6
    # a CUDA graph's replay is one launch of its own (its kernels are not launched one by one)
    names = ("cudaLaunchKernel", "cuLaunchKernel", "cudaLaunchKernelExC", "cudaGraphLaunch")
    launches = sum(e.count for e in events if e.key in names)
    table = events.table(sort_by="self_device_time_total", row_limit=15)
    tag = "_compiled" if args.compile else ""
    out = Path(args.profile_dir) / f"profile_{args.backbone}_{args.variant}_b{args.batch}{tag}.txt"
    out.write_text(f"wall {wall * 1000:.1f} ms, GPU kernels {kernels * 1000:.1f} ms, launches {launches}\n\n{table}\n")
    return kernels / wall


def timed_steps(args, device, forward_backward, opt, compile_step=None) -> tuple[list[float], int]:
    """Seconds of each step (forward, backward, AdamW) after the first (which warms up allocators
    and kernels, and is counted for its floating-point operations). `compile_step` (--compile):
    called after that eager step, so that the FLOPs are counted eagerly (compiled kernels are not
    dispatched where torch counts them); three untimed steps then compile and record CUDA graphs."""
    import torch

    from bench.common import count_kernels

    def step():
        forward_backward()
        opt.step()
        opt.zero_grad(set_to_none=True)

    if args.textbook_lora:
        textbook_lora()
    flops = step_flops(step)
    if compile_step is not None:
        compile_step()
        for _ in range(3):
            step()
    if args.count_kernels:
        args.kernels, args.update_kernels = count_kernels(forward_backward), count_kernels(opt.step)
        opt.zero_grad(set_to_none=True)
    if args.profile_dir and device.type == "cuda":
        args.gpu_busy = profile_step(args, step)
    times = []
    for _ in range(args.steps):
        if device.type == "cuda":
            torch.cuda.synchronize()
        t0 = time.perf_counter()
        step()
        if device.type == "cuda":
            torch.cuda.synchronize()
        times.append(time.perf_counter() - t0)
    return times, flops


def child(args: argparse.Namespace) -> None:
    """Train `args.steps` steps of one variant and print {"step_s", "peak_mb"}."""
    import torch

    from hlora_cli.model import BackboneRef, LoRAConfig, ModelConfig, build_model
    from hlora_cli.model.losses import distill_loss, joint_loss
    from hlora_cli.model.precision import keep_frozen_in

    if args.threads:
        torch.set_num_threads(args.threads)
    else:  # the toolkit's own choice: threads and loader workers within the cores this process may use
        from hlora_cli.device import fit_threads

        fit_threads(0)
    torch.manual_seed(0)
    from bench.common import whisper_ref

    ref = whisper_ref(args.whisper) if args.backbone == "whisper" else BackboneRef("hubert", config=HUBERT_BASE)
    if args.variant == "seq2seq":
        return seq2seq_child(args, ref)
    from hlora_cli.data.vocab import BLANK

    vocab = [BLANK, "|", "<unk>"] + [chr(c) for c in range(ord("a"), ord("a") + 29)]
    full = args.variant == "full"
    model_type = {"full": "ctc", "hlora": "hlora", "expert": "expert"}.get(args.variant, "student")
    langs_of = ["en"] if model_type == "expert" else LANGS
    rank = {"expert": 64, "student": 256}.get(model_type, 8)
    cfg = ModelConfig(
        model_type,  # ctc: every encoder layer trains, no LoRA, prefix-token LID
        ref,
        langs_of,
        vocabs={} if model_type in ("ctc", "student") else {lang: vocab for lang in langs_of},
        shared_vocab=vocab + [f"<{lang}>" for lang in LANGS] if model_type != "expert" else [],
        k=args.k if model_type == "hlora" else None,
        lora=LoRAConfig(rank=rank, alpha=2.0 * rank),
    )
    device = torch.device(args.device)
    model = build_model(cfg).to(device).train()
    teacher = None
    if args.variant == "distill":  # the 4 experts as one teacher, each utterance through its own
        tcfg = ModelConfig("lidlora", ref, LANGS, vocabs={lang: vocab for lang in LANGS}, lora=LoRAConfig(64, 128.0))
        teacher = build_model(tcfg).to(device).eval().requires_grad_(False)
        maps = [torch.arange(len(vocab), device=device) for _ in LANGS]
    if args.bf16 and not args.autocast_casts:  # as the trainer does
        for m in [model] if teacher is None else [model, teacher]:
            keep_frozen_in(m.backbone, torch.bfloat16)
    params, opt, rng, feats, langs = training_batch(args, model, device, len(langs_of))
    targets = [[int(x) for x in rng.integers(3, len(vocab), size=int(args.seconds * 12))] for _ in range(args.batch)]
    sizes = model.readout.vocab_sizes
    autocast = torch.autocast(device.type, dtype=torch.bfloat16) if args.bf16 else torch.autocast("cpu", enabled=False)
    core = [model]  # or its compiled forward (--compile)

    def forward_backward():
        with autocast:
            out = core[0](feats, "oracle", langs, hidden=teacher is not None)
        parts = joint_loss(out, langs, targets, sizes, 0.0 if full else 0.3)
        if teacher is not None:
            with torch.no_grad(), autocast:
                t_out = teacher(feats, "oracle", langs, hidden=True)
            parts = distill_loss(parts, out, t_out, langs, maps, 1.0, 1.0)
        parts.total.backward()

    times, flops = timed_steps(args, device, forward_backward, opt, compile_swap(args, core, device))
    trainable = sum(p.numel() for p in params)

    def forward():
        with autocast:
            out = model(feats, "oracle", langs)
        return joint_loss(out, langs, targets, sizes, 0.3)

    accounted = tensor_memory(model, opt, forward)
    report(args, times, flops, trainable, accounted)


def tensor_memory(model, opt, forward) -> int:
    """Bytes a training step holds at its peak (end of forward / backward), allocator-independent:
    weights and buffers + gradients + optimizer state + activations saved for backward (storages
    counted once; saved views of weights are not counted again)."""
    import torch

    weights = {
        t.untyped_storage().data_ptr(): t.untyped_storage().nbytes() for t in [*model.parameters(), *model.buffers()]
    }
    saved: dict[int, int] = {}

    def pack(t):
        st = t.untyped_storage()
        if st.data_ptr() not in weights:
            saved[st.data_ptr()] = st.nbytes()
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        loss = forward().total
    loss.backward()
    grads = sum(p.grad.untyped_storage().nbytes() for p in model.parameters() if p.grad is not None)
    states = sum(
        v.untyped_storage().nbytes() for st in opt.state.values() for v in st.values() if isinstance(v, torch.Tensor)
    )
    opt.zero_grad(set_to_none=True)
    return sum(weights.values()) + sum(saved.values()) + grads + states


def child_command(args: argparse.Namespace, backbone: str, variant: str, k: int, steps: int) -> list[str]:
    cmd = [
        sys.executable,
        __file__,
        "--child",
        "--backbone",
        backbone,
        "--variant",
        variant,
        "--k",
        str(k),
        "--steps",
        str(steps),
        "--batch",
        str(args.batch),
        "--seconds",
        str(args.seconds),
        "--whisper",
        args.whisper,
        "--device",
        args.device,
        "--threads",
        str(args.threads),
    ]
    for flag in ("bf16", "count_kernels", "textbook_lora", "autocast_casts", "compile"):
        if getattr(args, flag):
            cmd.append("--" + flag.replace("_", "-"))
    if args.profile_dir:
        cmd += ["--profile-dir", args.profile_dir]
    return cmd


def run_variant(args: argparse.Namespace, backbone: str, variant: str, k: int, env: dict | None = None) -> dict:
    cmd = child_command(args, backbone, variant, k, args.steps)
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, env=env)
    _, status, usage = os.wait4(proc.pid, 0)
    out = proc.stdout.read()
    if status != 0:
        raise SystemExit(f"{backbone} {variant} failed (status {status})")
    result = json.loads(out.strip().splitlines()[-1])
    if result["peak_mb"] is None:  # CPU: the child's peak resident set (ru_maxrss is in KiB on Linux)
        result["peak_mb"] = usage.ru_maxrss / 1024
    result["mem_mb"] = result["accounted_mb"] if args.device == "cpu" else result["peak_mb"]
    return result


def contention(args: argparse.Namespace, write_section) -> None:
    """Whisper-base HLoRA k=3 training throughput alone and beside a competing process (the same
    training, started first and left running), under the old settings (2 threads, OpenMP's default
    waiting: threads spin at barriers) and under hlora's own (threads fitted to the cores, waiting
    threads yield: OMP_WAIT_POLICY=PASSIVE, which hlora sets unless the user did)."""
    from bench.common import machine

    settings = {
        "spinning, 2 threads": ({"OMP_WAIT_POLICY": "ACTIVE"}, 2),
        "hlora's default": ({"OMP_WAIT_POLICY": "PASSIVE"}, 0),
    }
    rows, result = [], {}
    for name, (extra, threads) in settings.items():
        env = {**os.environ, **extra}
        args.threads = threads
        quiet = run_variant(args, "whisper", "hlora", 3, env)["audio_s_per_s"]
        rival = subprocess.Popen(
            child_command(args, "whisper", "hlora", 3, 100000),
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            env=env,
        )
        try:
            time.sleep(20)  # the rival imports, builds its model and starts stepping
            contended = run_variant(args, "whisper", "hlora", 3, env)["audio_s_per_s"]
        finally:
            rival.kill()
            rival.wait()
        ratio = contended / quiet
        print(f"{name}: quiet {quiet:.2f} audio-s/s, beside a rival {contended:.2f} ({ratio:.2f})", flush=True)
        rows.append(f"| {name} | {quiet:.2f} | {contended:.2f} | {ratio:.2f} |")
        result[name] = {"quiet": round(quiet, 3), "contended": round(contended, 3), "ratio": round(ratio, 3)}
    head = result["hlora's default"]
    result.update(
        quiet_audio_s_per_s=head["quiet"], contended_audio_s_per_s=head["contended"], contention_ratio=head["ratio"]
    )
    body = (
        "## Training on a shared machine (`bench/train_speed.py --contention`)\n\n"
        f"Whisper-base HLoRA k=3, {args.batch} x {args.seconds:g} s, {args.device}, {machine()}; audio seconds "
        f"trained per second, median of {args.steps} steps, alone and beside a competing copy of the same "
        "training. Goal: beside a rival >= 0.40 of alone (a fair share of 2 cores is 0.5).\n\n"
        "| settings | alone | beside a rival | ratio |\n|---|---|---|---|\n" + "\n".join(rows)
    )
    publish(args, write_section, f"train_contention_{args.device}", body, result)


def utilisation(args: argparse.Namespace, write_section) -> None:
    """Audio seconds per second and model FLOP utilisation of HuBERT-base-size HLoRA k=9 (CTC) and
    of seq2seq Whisper-base HLoRA k=3 (encoder and decoder LoRA)."""
    from bench.common import machine

    runs = {
        "hubert-base-size HLoRA k=9": ("hubert", "hlora", 9),
        "whisper-base seq2seq HLoRA k=3": ("whisper", "seq2seq", 3),
    }
    rows, result = [], {}
    batches = [int(b) for b in args.mfu_batches.split(",")] if args.mfu_batches else [args.batch]
    modes = [False, True] if args.compile else [False]  # eager, and compiled (`hlora train --compile`)
    for (name, (backbone, variant, k)), batch in [(r, b) for r in runs.items() for b in batches]:
        args.batch, eager = batch, None
        for compiled in modes:
            args.compile = compiled
            r = run_variant(args, backbone, variant, k)
            label = f"{name}, compiled" if compiled else name
            mfu = f"{100 * r['mfu']:.1f} %" if r["mfu"] is not None else "-"
            busy = f"{100 * r['gpu_busy']:.0f} %" if r.get("gpu_busy") is not None else "-"
            gain = f"{r['audio_s_per_s'] / eager:.2f}" if eager else "-"  # compiled / eager throughput
            eager = eager or r["audio_s_per_s"]
            print(
                f"{label}: {r['audio_s_per_s']:.0f} audio-s/s ({gain} x eager), {r['tflops']:.1f} TFLOP/s, "
                f"MFU {mfu}, GPU busy {busy}",
                flush=True,
            )
            rows.append(
                f"| {label} | {args.batch} | {r['step_s'] * 1000:.0f} | {r['audio_s_per_s']:.0f} | {gain} "
                f"| {r['tflops']:.1f} | {mfu} | {busy} |"
            )
            key = f"{label} batch {batch}"
            result[key] = {n: (round(v, 4) if isinstance(v, float) else v) for n, v in r.items()}
    args.compile = bool(modes[-1])
    dtype = "bf16" if args.bf16 else "fp32"
    body = (
        f"## Training throughput and FLOP utilisation (`bench/train_speed.py --mfu`), {args.device} {dtype}\n\n"
        f"{'/'.join(map(str, batches))} x {args.seconds:g} s a step, {machine()}; median of {args.steps} steps "
        "after a warm-up step; FLOPs as torch's FlopCounterMode counts one step (forward and backward); MFU "
        "against the GPU's dense bf16 peak. Goal: >= 30 %.\n\n"
        "GPU busy: the share of a profiled step's wall time the GPU spends in kernels. Compiled: the model "
        "core's forward and backward through `hlora train --compile` (model/compiled.py: torch.compile, CUDA "
        "graphs); x eager: its audio-s/s over the eager row's, in the same run.\n\n"
        "| model | batch | ms/step | audio-s/s | x eager | TFLOP/s | MFU | GPU busy |\n"
        "|---|---|---|---|---|---|---|---|\n" + "\n".join(rows)
    )
    publish(args, write_section, f"train_mfu_{args.device.split(':')[0]}", body, result)


def publish(args: argparse.Namespace, write_section, section: str, body: str, result: dict) -> None:
    """The section goes to BENCHMARKS.md (unless --no-write); the result is the last line printed."""
    if not args.no_write:
        write_section(section, body, result)
    print(json.dumps(result))


def kernels(args: argparse.Namespace, write_section) -> None:
    """Kernels a bf16 training step dispatches (device-independent) and its time on this device,
    for HLoRA on the HuBERT-base size (k=9, CTC) and seq2seq Whisper-base (k=3): the LoRA forward
    as usually written with autocast casting every frozen weight on every call (hlora before
    2026-12-04), hlora's LoRA forward alone, and hlora's training step (its LoRA forward and the
    frozen weights kept in bf16)."""
    from bench.common import machine

    settings = {
        "textbook LoRA, autocast casts": (True, True),
        "hlora LoRA, autocast casts": (False, True),
        "hlora (frozen weights in bf16)": (False, False),
    }
    runs = {"hubert-base-size HLoRA k=9": ("hubert", "hlora", 9), "whisper-base seq2seq k=3": ("whisper", "seq2seq", 3)}
    args.bf16 = args.count_kernels = True
    rows, result = [], {}
    for name, (backbone, variant, k) in runs.items():
        first = None
        for setting, (textbook, casts) in settings.items():
            args.textbook_lora, args.autocast_casts = textbook, casts
            r = run_variant(args, backbone, variant, k)
            first = first or r
            ratio = r["kernels"] / first["kernels"]
            ms = r["step_s"] * 1000
            print(f"{name}, {setting}: {r['kernels']} kernels ({ratio:.2f}), {ms:.0f} ms/step", flush=True)
            rows.append(
                f"| {name} | {setting} | {r['kernels']} | {ratio:.2f} | {r['update_kernels']} "
                f"| {ms:.0f} | {r['step_s'] / first['step_s']:.2f} |"
            )
            result[f"{name}, {setting}"] = {
                "kernels": r["kernels"], "update_kernels": r["update_kernels"], "step_s": round(r["step_s"], 4)
            }  # fmt: skip
        result[f"{name}: kernels_ratio"] = round(r["kernels"] / first["kernels"], 3)
        result[f"{name}: step_ratio"] = round(r["step_s"] / first["step_s"], 3)
    body = (
        f"## Kernels a training step launches (`bench/train_speed.py --kernels`), {args.device} bf16\n\n"
        f"{args.batch} x {args.seconds:g} s a step, {machine()}; median of {args.steps} steps after a warm-up "
        "step. Kernels: the operators one forward and backward dispatch below autograd and autocast, views "
        "left out (about one launch each on a GPU, where the seq2seq step was launch-bound: 3175 launches "
        "for 20-50 ms of kernels); the same count on any device. Update: AdamW's own (a loop over the "
        "parameters on a CPU, one fused kernel per group on a GPU, as the trainer sets it).\n\n"
        "| model | LoRA forward, frozen weights | kernels | ratio | update | ms/step | ratio |\n"
        "|---|---|---|---|---|---|---|\n" + "\n".join(rows)
    )
    publish(args, write_section, f"train_kernels_{args.device.split(':')[0]}", body, result)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true", help="Whisper-base only, 2 timed steps")
    ap.add_argument("--whisper", default=os.path.expanduser("~/.cache/hlora/whisper-base"))
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--bf16", action="store_true", help="bf16 autocast (on the CPU too)")
    ap.add_argument("--threads", type=int, default=2, help="torch threads; 0: hlora's own choice (fit_threads)")
    ap.add_argument("--contention", action="store_true", help="quiet against beside a competing training")
    ap.add_argument("--mfu", action="store_true", help="throughput and model FLOP utilisation (GPU set)")
    ap.add_argument("--mfu-batches", default=None, help="--mfu: comma-separated batch sizes (default --batch)")
    ap.add_argument("--profile-dir", default=None, help="--mfu on a GPU: one profiled step per model, written here")
    ap.add_argument("--kernels", action="store_true", help="kernels per bf16 step: textbook LoRA against hlora's")
    ap.add_argument("--compile", action="store_true", help="--mfu: each model eager and compiled (GPU only)")
    ap.add_argument("--batch", type=int, default=4)
    ap.add_argument("--seconds", type=float, default=5.0)
    ap.add_argument("--steps", type=int, default=None)
    ap.add_argument("--no-write", action="store_true")
    # child-process arguments
    ap.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--backbone", default="whisper", help=argparse.SUPPRESS)
    ap.add_argument("--variant", default="hlora", help=argparse.SUPPRESS)
    ap.add_argument("--k", type=int, default=3, help=argparse.SUPPRESS)
    ap.add_argument("--count-kernels", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--textbook-lora", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--autocast-casts", action="store_true", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        return child(args)
    args.steps = args.steps or (2 if args.quick else 4)
    if args.compile and not (args.mfu and args.device.startswith("cuda")):
        raise SystemExit("--compile adds compiled rows to --mfu on a CUDA device (hlora train --compile is GPU-only)")
    from bench.common import write_section

    if args.contention:
        return contention(args, write_section)
    if args.mfu:
        return utilisation(args, write_section)
    if args.kernels:
        return kernels(args, write_section)

    backbones = [("whisper", "whisper-base", 6)] + ([] if args.quick else [("hubert", "hubert-base-size", 12)])
    result, rows = {}, []
    for backbone, label, layers in backbones:
        full = run_variant(args, backbone, "full", 0)
        per = {"full": full}
        for k in (3, 9):
            if k < layers:
                per[f"hlora_k{k}"] = run_variant(args, backbone, "hlora", k)
        for variant in ("expert", "student", "distill"):
            per[variant] = run_variant(args, backbone, variant, 0)
        for name, r in per.items():
            rows.append(
                f"| {label} | {name} | {r['trainable']:,} | {r['step_s']:.2f} | {r['mem_mb']:.0f} | "
                f"{r['peak_mb']:.0f} | {r['step_s'] / full['step_s']:.2f} | {r['mem_mb'] / full['mem_mb']:.2f} |"
            )
            print(
                f"{label} {name}: {r['step_s']:.2f} s/step, {r['mem_mb']:.0f} MB (peak RSS {r['peak_mb']:.0f})",
                flush=True,
            )
        key = label.replace("-", "_")
        result[key] = {
            n: {
                "step_s": round(r["step_s"], 3),
                "mem_mb": round(r["mem_mb"], 1),
                "peak_rss_mb": round(r["peak_mb"], 1),
                "step_ratio": round(r["step_s"] / full["step_s"], 3),
                "mem_ratio": round(r["mem_mb"] / full["mem_mb"], 3),
            }
            for n, r in per.items()
        }
    hl = [v for b in result.values() for n, v in b.items() if n.startswith("hlora")]
    distill = max(b["distill"]["step_s"] / b["student"]["step_s"] for b in result.values())
    result["mem_ratio"] = max(v["mem_ratio"] for v in hl)  # headline: the least favourable HLoRA row
    result["step_ratio"] = max(v["step_ratio"] for v in hl)
    # what layer-wise distillation costs per step over training the same student plainly
    result["distill_over_student"] = round(distill, 3)
    result["device"] = args.device + (" bf16" if args.bf16 else "")
    body = (
        "## Training: HLoRA against full fine-tuning (`bench/train_speed.py`)\n\n"
        f"Same batch ({args.batch} x {args.seconds:g} s, 4 languages), {args.device}"
        f"{' bf16' if args.bf16 else ''}, {args.threads} threads; median of {args.steps} steps after one warm-up "
        "step, each variant in its own process. Memory: on CPU the tensor memory a step holds (weights and "
        "buffers + gradients + AdamW state + activations autograd saves for backward, storages counted "
        "once), because the process's peak RSS (also shown) is dominated by libraries and by loading "
        "the checkpoint; on CUDA the peak allocated memory. "
        "Goals: memory <= 0.5x, step time <= 0.8x of full fine-tuning. expert: one language's rank-64 LoRA "
        "(every utterance in its language); student: rank-256 shared LoRA, CTC only; distill: the same "
        "student plus the teacher forward (4 rank-64 experts) and the layer-wise cosine + JS terms.\n\n"
        "| backbone | variant | trainable | s/step | memory MB | peak RSS MB | step ratio | memory ratio |\n"
        "|---|---|---|---|---|---|---|---|\n" + "\n".join(rows)
    )
    publish(args, write_section, f"train_speed_{args.device}", body, result)


if __name__ == "__main__":
    main()
