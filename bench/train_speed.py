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


def child(args: argparse.Namespace) -> None:
    """Train `args.steps` steps of one variant and print {"step_s", "peak_mb"}."""
    import numpy as np
    import torch

    from hlora_cli.model import BackboneRef, LoRAConfig, ModelConfig, build_model
    from hlora_cli.model.config import BLANK
    from hlora_cli.train.losses import distill_loss, joint_loss

    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    ref = (
        BackboneRef("whisper", source=args.whisper)
        if args.backbone == "whisper"
        else BackboneRef("hubert", config=HUBERT_BASE)
    )
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
    params = [p for p in model.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(params, lr=1e-5)
    rng = np.random.default_rng(0)
    wavs = [(0.1 * rng.standard_normal(int(args.seconds * 16000))).astype(np.float32) for _ in range(args.batch)]
    feats = model.prepare(wavs).to(device)
    langs = torch.tensor([i % len(langs_of) for i in range(args.batch)], device=device)
    targets = [[int(x) for x in rng.integers(3, len(vocab), size=int(args.seconds * 12))] for _ in range(args.batch)]
    sizes = model.ctc_heads.vocab_sizes
    autocast = torch.autocast(device.type, dtype=torch.bfloat16) if args.bf16 else torch.autocast("cpu", enabled=False)
    times = []
    for step in range(args.steps + 1):
        if device.type == "cuda":
            torch.cuda.synchronize()
        t0 = time.perf_counter()
        with autocast:
            out = model(feats, "oracle", langs, hidden=teacher is not None)
        parts = joint_loss(out, langs, targets, sizes, 0.0 if full else 0.3)
        if teacher is not None:
            with torch.no_grad(), autocast:
                t_out = teacher(feats, "oracle", langs, hidden=True)
            parts = distill_loss(parts, out, t_out, langs, maps, 1.0, 1.0)
        loss = parts.total
        loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)
        if device.type == "cuda":
            torch.cuda.synchronize()
        if step > 0:  # the first step warms up allocators and kernels
            times.append(time.perf_counter() - t0)
    peak = torch.cuda.max_memory_allocated() / 2**20 if device.type == "cuda" else None
    trainable = sum(p.numel() for p in params)
    accounted = tensor_memory(model, opt, lambda: joint_loss(model(feats, "oracle", langs), langs, targets, sizes, 0.3))
    print(
        json.dumps(
            {
                "step_s": statistics.median(times),
                "peak_mb": peak,
                "trainable": trainable,
                "accounted_mb": accounted / 2**20,
            }
        )
    )


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


def run_variant(args: argparse.Namespace, backbone: str, variant: str, k: int) -> dict:
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
        str(args.steps),
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
    if args.bf16:
        cmd.append("--bf16")
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    _, status, usage = os.wait4(proc.pid, 0)
    out = proc.stdout.read()
    if status != 0:
        raise SystemExit(f"{backbone} {variant} failed (status {status})")
    result = json.loads(out.strip().splitlines()[-1])
    if result["peak_mb"] is None:  # CPU: the child's peak resident set (ru_maxrss is in KiB on Linux)
        result["peak_mb"] = usage.ru_maxrss / 1024
    result["mem_mb"] = result["accounted_mb"] if args.device == "cpu" else result["peak_mb"]
    return result


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true", help="Whisper-base only, 2 timed steps")
    ap.add_argument("--whisper", default=os.path.expanduser("~/.cache/hlora/whisper-base"))
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--bf16", action="store_true", help="bf16 autocast (on the CPU too)")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--batch", type=int, default=4)
    ap.add_argument("--seconds", type=float, default=5.0)
    ap.add_argument("--steps", type=int, default=None)
    ap.add_argument("--no-write", action="store_true")
    # child-process arguments
    ap.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--backbone", default="whisper", help=argparse.SUPPRESS)
    ap.add_argument("--variant", default="hlora", help=argparse.SUPPRESS)
    ap.add_argument("--k", type=int, default=3, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        return child(args)
    args.steps = args.steps or (2 if args.quick else 4)
    from bench.common import write_section

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
    if not args.no_write:
        write_section(f"train_speed_{args.device}", body, result)
    print(json.dumps(result))


if __name__ == "__main__":
    main()
