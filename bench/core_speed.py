"""Inference cost of the model core on a mixed-language batch (8 utterances x 5 s, 4 languages).

Side by side in one process, medians of interleaved runs, 2 CPU threads (or on a GPU with
`--device cuda --dtype bf16 --batch 16,64`):
  (a) bare backbone                       (our layer-by-layer encoder, no LoRA)
  (b) HLoRA single pass, merged           (shared LoRA folded in; routed layers: one merged weight per language,
                                            run by one grouped matmul over the language-sorted batch where torch
                                            has one (bf16 on a CPU or a compute capability 9/10 GPU), else one
                                            matmul per language present)
  (b0) (b) with one matmul per language   (only where (b) is grouped: what (b) ran before, side by side)
  (c) HLoRA single pass, unmerged         (batched per-sample adapters)
  (d) two-stage                           (shared-LoRA LID pass over all layers, then a LIDLoRA pass, both merged)
  (e) peft LoRA with adapter_names        (peft's mixed-batch path; per-language adapters in the same layers
                                            k+1..N as HLoRA's routed LoRA, lower layers bare: generous to peft)
  (f) MoLE single pass, merged            (4 experts fused in layers 1..L1 = k, folded into one weight per layer;
                                            router after L1; each language's expert in L1+1..N, merged per language)
  (g) distilled student, merged           (one shared LoRA in every layer folded in, LID head on the output)
With --compile, rows more (model/compiled.py, the `hlora decode --compile` path; CUDA graphs on a GPU):
  (h) HLoRA single pass, compiled         (as `hlora decode --compile` runs it: (b)'s grouped matmul where it
                                            applies, else (j))
  (i) bare backbone, compiled
  (j) HLoRA compiled, routed LoRA unmerged (each row's adapter in one batched matmul; only where (h) is grouped)
(b)-(d) and (f) run with oracle routing set to the batch's 4 languages, which costs the same as predicted routing
(the LID head runs either way) but guarantees a mixed batch even with untrained LID heads.

Usage: python bench/core_speed.py [--quick] [--whisper DIR] [--device cuda] [--dtype bf16] [--batch 16,64] [--compile]
The last line printed is one JSON object; the results also go to BENCHMARKS.md.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path
from unittest import mock

import numpy as np
import torch
from torch import nn

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from bench.common import dispatched, machine, time_interleaved, whisper_ref, write_section  # noqa: E402
from hlora_cli.data.vocab import BLANK  # noqa: E402
from hlora_cli.device import autocast, check_dtype, resolve_device  # noqa: E402
from hlora_cli.model import BackboneRef, LoRAConfig, ModelConfig, build_model, load_backbone, lora  # noqa: E402
from hlora_cli.model.backbone import additive_mask  # noqa: E402

LANGS = ["en", "de", "fr", "ja"]
VOCAB = [BLANK, "|", "<unk>"] + [chr(c) for c in range(ord("a"), ord("a") + 29)]
HUBERT_BASE = {"hidden_size": 768, "num_hidden_layers": 12, "num_attention_heads": 12, "intermediate_size": 3072}


COLUMNS = {
    "a_bare": "(a) bare",
    "b_hlora_merged": "(b) HLoRA merged",
    "c_hlora_unmerged": "(c) HLoRA unmerged",
    "d_two_stage": "(d) two-stage",
    "e_peft": "(e) peft adapter_names",
    "f_mole_merged": "(f) MoLE merged",
    "g_student_merged": "(g) student merged",
    "b0_hlora_merged_loop": "(b0) merged, a matmul per language",
    "h_hlora_compiled": "(h) HLoRA compiled",
    "i_bare_compiled": "(i) bare compiled",
    "j_hlora_compiled_lora": "(j) compiled, routed LoRA unmerged",
}
HOST_RUNS = ("aten._unique2", "aten.unique_consecutive")  # the loop asking which languages a batch holds
RATIOS = {
    "hlora_over_bare": "b/a",
    "unmerged_over_merged": "c/b",
    "two_stage_over_hlora": "d/b",
    "peft_over_hlora": "e/b",
    "mole_over_bare": "f/a",
    "student_over_bare": "g/a",
    "grouped_over_loop": "b/b0",
    "compiled_over_bare": "h/a",
    "compiled_over_compiled_bare": "h/i",
    "compiled_grouped_over_lora": "h/j",
}


def config(model_type: str, ref: BackboneRef, k: int | None, rank: int) -> ModelConfig:
    return ModelConfig(
        model_type,
        ref,
        LANGS,
        vocabs={lang: VOCAB for lang in LANGS},
        shared_vocab=VOCAB + [f"<{lang}>" for lang in LANGS],
        k=k if model_type == "hlora" else None,
        l1=k if model_type == "mole" else None,
        lora=LoRAConfig(rank=rank, alpha=2.0 * rank),
    )


def randomize(model: nn.Module) -> None:
    """Random trained weights, the frozen experts of a MoLE model included."""
    g = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for n, p in model.named_parameters():
            if p.requires_grad or ".lora_" in n or not n.startswith("backbone."):
                p.copy_(torch.randn(p.shape, generator=g) * 0.02)


class BareEncoder(nn.Module):
    """Our layer-by-layer backbone as one module, for (a) and for peft to wrap in (e)."""

    def __init__(self, backbone) -> None:
        super().__init__()
        self.bb = backbone

    def forward(self, values: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        from hlora_cli.model.backbone import Features

        h, out_lengths = self.bb.embed(Features(values, lengths))
        mask = additive_mask(out_lengths, h.shape[1], h.dtype)
        for i in range(self.bb.num_layers):
            h = self.bb.layer(i, h, mask)
        return self.bb.finish(h)


def peft_model(ref: BackboneRef, k: int, rank: int):
    from peft import LoraConfig, get_peft_model

    bb = load_backbone(ref)
    targets = [p.rsplit(".", 1)[-1] for p in bb.target_paths.values()]
    top = list(range(k, bb.num_layers))  # HLoRA's routed layers k+1..N (0-based k..N-1)
    cfg = LoraConfig(
        r=rank, lora_alpha=2 * rank, target_modules=targets, layers_to_transform=top, layers_pattern="layers"
    )
    model = get_peft_model(BareEncoder(bb), cfg, adapter_name=LANGS[0])
    for lang in LANGS[1:]:
        model.add_adapter(lang, cfg)
    randomize(model)
    return model.eval()


def measure(
    label: str,
    ref: BackboneRef,
    k: int,
    rank: int,
    repeats: int,
    batch: int,
    device: torch.device,
    dtype,
    compiled: bool = False,
) -> dict[str, float]:
    rng = np.random.default_rng(0)
    wavs = [(0.1 * rng.standard_normal(5 * 16000)).astype(np.float32) for _ in range(batch)]
    langs = torch.arange(batch, device=device) % len(LANGS)
    hlora_m = build_model(config("hlora", ref, k, rank)).eval()
    hlora_u = build_model(config("hlora", ref, k, rank)).eval()
    baseline = build_model(config("shared-lora", ref, None, rank)).eval()
    lidlora = build_model(config("lidlora", ref, None, rank)).eval()
    mole = build_model(config("mole", ref, k, rank)).eval()
    student = build_model(config("student", ref, None, rank)).eval()
    for m in (hlora_m, hlora_u, baseline, lidlora, mole, student):
        randomize(m)
        m.to(device)
    for m in (hlora_m, baseline, lidlora, mole, student):
        m.merge(routed=True)
    bare = BareEncoder(load_backbone(ref)).eval().to(device)
    peft = peft_model(ref, k, rank).to(device)
    feats = hlora_m.prepare(wavs).to(device)
    adapter_names = [LANGS[i] for i in langs.tolist()]

    def two_stage():  # the work of the Recognizer's two-stage mode: a LID pass, then oracle routing
        first = baseline.identify(feats).argmax(-1)
        return lidlora(feats, "oracle", first if len(set(first.tolist())) > 1 else langs)

    grouped = hlora_m.merges_grouped(device, dtype)  # as `hlora decode` decides it
    extra = {}
    if grouped:  # the per-language loop (b) ran before, timed beside it

        def loop():
            with mock.patch.object(lora, "grouped_routing", lambda *_: False):
                return hlora_m(feats, "oracle", langs)

        extra["b0_hlora_merged_loop"] = loop
    if compiled:  # what `hlora decode --compile` runs: compiled once here, then timed as the others
        from hlora_cli.model.compiled import compile_model

        hlora_s, hlora_j = (build_model(config("hlora", ref, k, rank)).eval() for _ in range(2))
        for m, routed in ((hlora_s, grouped), (hlora_j, False)):
            randomize(m)
            m.to(device).merge(routed=routed, dtype=dtype)  # cast before compiling: no second compile
        hlora_c, bare_c = compile_model(hlora_s, device), compile_model(bare, device)
        extra["h_hlora_compiled"] = lambda: hlora_c(feats, "oracle", langs)
        extra["i_bare_compiled"] = lambda: bare_c(feats.values, feats.lengths)
        if grouped:
            hlora_jc = compile_model(hlora_j, device)
            extra["j_hlora_compiled_lora"] = lambda: hlora_jc(feats, "oracle", langs)
        with torch.inference_mode(), autocast(device, dtype):
            for _ in range(3):  # compile, then (CUDA graphs) record
                for fn in extra.values():
                    fn()
    fns = {
        "a_bare": lambda: bare(feats.values, feats.lengths),
        "b_hlora_merged": lambda: hlora_m(feats, "oracle", langs),
        "c_hlora_unmerged": lambda: hlora_u(feats, "oracle", langs),
        "d_two_stage": two_stage,
        "e_peft": lambda: peft(feats.values, feats.lengths, adapter_names=adapter_names),
        "f_mole_merged": lambda: mole(feats, "oracle", langs),
        "g_student_merged": lambda: student(feats),
        **extra,
    }
    with torch.inference_mode(), autocast(device, dtype):
        t = time_interleaved(fns, repeats=repeats, sync=torch.cuda.synchronize if device.type == "cuda" else None)
        # eager launches (one kernel each on a GPU) and the runs of languages asked of the host
        ops = {n: dispatched(fns[n]) for n in ("a_bare", "b_hlora_merged", "b0_hlora_merged_loop") if n in fns}
    print(f"{label}: " + ", ".join(f"{n} {s * 1000:.0f} ms" for n, s in t.items()), flush=True)
    kernels = {n: sum(c.values()) for n, c in ops.items()}
    lookups = {n: sum(c[o] for o in HOST_RUNS) for n, c in ops.items()}
    print(f"{label}: eager kernels {kernels}, language lookups {lookups}", flush=True)
    return t, kernels, lookups


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true", help="fewer repeats (under 3 minutes)")
    ap.add_argument("--whisper", default=os.path.expanduser("~/.cache/hlora/whisper-base"))
    ap.add_argument("--no-write", action="store_true", help="do not update BENCHMARKS.md")
    ap.add_argument("--device", default="cpu", help="cpu, cuda or cuda:N")
    ap.add_argument("--dtype", default="auto", help="auto, fp32, bf16 or fp16 (autocast)")
    ap.add_argument("--compile", action="store_true", help="also the compiled path (rows h, i)")
    ap.add_argument("--batch", default="8", help="utterances per batch; comma-separated for several")
    args = ap.parse_args()
    device = resolve_device(args.device)
    dtype = check_dtype(args.dtype, device)
    batches = [int(b) for b in args.batch.split(",")]
    torch.set_num_threads(2)
    repeats = 3 if args.quick else 7
    whisper, hubert = whisper_ref(args.whisper), BackboneRef("hubert", config=HUBERT_BASE)
    # rank 8 is our default and gives the headline; rank 32 shows how peft's unmerged cost grows.
    # k = shared lower layers: 3 of Whisper-base's 6, 9 of 12 (the paper's best) for the HuBERT.
    setups = [("whisper-base", whisper, 3, 8), ("hubert-base-size", hubert, 9, 8)]
    if not args.quick:
        setups += [("whisper-base", whisper, 3, 32), ("hubert-base-size", hubert, 9, 32)]
    rows, counts, result = [], [], {}
    for (name, ref, k, rank), batch in [(s, b) for s in setups for b in batches]:
        label = f"{name} k={k} rank={rank}" + (f" batch {batch}" if len(batches) > 1 or batch != 8 else "")
        t, kernels, lookups = measure(label, ref, k, rank, repeats, batch, device, dtype, args.compile)
        key = f"{name.replace('-', '_')}_r{rank}" + (f"_b{batch}" if batch != 8 else "")
        r = {
            "hlora_over_bare": t["b_hlora_merged"] / t["a_bare"],
            "unmerged_over_merged": t["c_hlora_unmerged"] / t["b_hlora_merged"],
            "two_stage_over_hlora": t["d_two_stage"] / t["b_hlora_merged"],
            "peft_over_hlora": t["e_peft"] / t["b_hlora_merged"],
            "mole_over_bare": t["f_mole_merged"] / t["a_bare"],
            "student_over_bare": t["g_student_merged"] / t["a_bare"],
        }
        if "b0_hlora_merged_loop" in t:
            r["grouped_over_loop"] = t["b_hlora_merged"] / t["b0_hlora_merged_loop"]
        if args.compile:
            r["compiled_over_bare"] = t["h_hlora_compiled"] / t["a_bare"]
            r["compiled_over_compiled_bare"] = t["h_hlora_compiled"] / t["i_bare_compiled"]
        if "j_hlora_compiled_lora" in t:
            r["compiled_grouped_over_lora"] = t["h_hlora_compiled"] / t["j_hlora_compiled_lora"]
        columns, ratios = list(t), list(r)
        result[key] = {**{n: round(s * 1000, 1) for n, s in t.items()}, **{n: round(v, 3) for n, v in r.items()}}
        result[key] |= {"eager_kernels": kernels, "language_lookups": lookups}
        counts.append(
            f"{label}: " + ", ".join(f"{COLUMNS[n].split()[0]} {kernels[n]} ({lookups[n]} lookups)" for n in kernels)
        )
        rows.append(
            f"| {label} | "
            + " | ".join(f"{t[n] * 1000:.0f}" for n in t)
            + " | "
            + " | ".join(f"{v:.2f}" for v in r.values())
            + " |"
        )
    # Headline ratios at the default rank 8: the less favourable of the two backbones.
    suffix = "" if batches[0] == 8 else f"_b{batches[0]}"
    heads = [result[f"whisper_base_r8{suffix}"], result[f"hubert_base_size_r8{suffix}"]]
    result["hlora_over_bare"] = max(h["hlora_over_bare"] for h in heads)
    result["two_stage_over_hlora"] = min(h["two_stage_over_hlora"] for h in heads)
    result["peft_over_hlora"] = min(h["peft_over_hlora"] for h in heads)
    result["mole_over_bare"] = max(h["mole_over_bare"] for h in heads)
    result["student_over_bare"] = max(h["student_over_bare"] for h in heads)
    for name in list(RATIOS)[6:]:  # the rows this device and --compile have
        if name in heads[0]:
            result[name] = max(h[name] for h in heads)
    result["quick"] = args.quick
    on = "" if device.type == "cpu" else f" on {torch.cuda.get_device_name(device)}, {args.dtype}"
    body = (
        f"## Model core: inference on a mixed-language batch (`bench/core_speed.py`){on}\n\n"
        f"{'/'.join(map(str, batches))} utterances x 5 s, 4 languages mixed, {machine()}; "
        f"medians of {repeats} interleaved runs, ms.\n"
        "Goals: b/a <= 1.05, d/b >= 1.9, e/b >= 1.1, f/a <= 1.05 (MoLE at HLoRA's speed).\n\n"
        "| backbone | "
        + " | ".join(COLUMNS[c] for c in columns)
        + " | "
        + " | ".join(RATIOS[c] for c in ratios)
        + " |\n"
        + "|---" * (1 + len(columns) + len(ratios))
        + "|\n"
        + "\n".join(rows)
        + "\n\nThe headline ratios in the JSON are those of rank 8 (the default), worse backbone of the two. "
        "(b) cannot be faster than (a), so e/b is bounded by e/a: how much peft's unmerged mixed batch "
        "costs over the bare encoder, which grows with the LoRA rank.\n\n"
        "Kernels one eager forward dispatches (about one launch each on a GPU, counted alike on any device; "
        "language lookups: the per-language loop asking the host which languages the batch holds, once per routed "
        "layer and for the heads, each a few device-to-host reads):\n" + "\n".join(f"- {c}" for c in counts)
    )
    if not args.no_write:
        write_section("core_speed" if device.type == "cpu" else "core_speed_cuda", body, result)
    print(json.dumps(result))


if __name__ == "__main__":
    main()
