"""Deployment paths on the CPU, side by side on one test set and one batch size: torch fp32,
torch bf16 (autocast), onnxruntime fp32 and onnxruntime int8 (dynamic quantization), each decoding
single-pass with greedy CTC. Prints RTF (wall seconds per audio second, the decoder's own clock:
audio read in a background worker, features, model, CTC decoding) and MER / CER of each, and where
the time of one pass goes (audio I/O, features, encoder + LID, routed layers + heads, CTC decoding),
measured stage by stage without the background worker.

Default: the demo's HLoRA (Whisper-base, k=3) on the demo's test set: `make demo` first.
With --compile, a row more: torch bf16 through `hlora decode --compile` (model/compiled.py; the
compiling, in an untimed first pass over the test set, is reported apart).
Usage: python bench/deploy_speed.py [--model DIR] [--test MANIFEST] [--threads 2] [--repeats 3] [--compile]
The last line printed is one JSON object; the results also go to BENCHMARKS.md (section deploy_speed).
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from bench.common import machine, write_section  # noqa: E402
from hlora_cli.data.audio import load_audio  # noqa: E402
from hlora_cli.data.batching import duration_batches  # noqa: E402
from hlora_cli.data.manifest import read_manifest  # noqa: E402
from hlora_cli.export.onnx import export_onnx  # noqa: E402
from hlora_cli.infer.inputs import collect_inputs  # noqa: E402
from hlora_cli.infer.onnx_model import OnnxModel  # noqa: E402
from hlora_cli.infer.options import DecodeOptions  # noqa: E402
from hlora_cli.infer.runner import Recognizer  # noqa: E402
from hlora_cli.model import load_model  # noqa: E402
from hlora_cli.model.ctc_decoding import greedy_hypothesis  # noqa: E402
from hlora_cli.score.metrics import score  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]


def recognizer(model, dtype: str, batch_seconds: float, compile_: bool = False) -> Recognizer:
    options = DecodeOptions(device="cpu", dtype=dtype, batch_seconds=batch_seconds, num_workers=1, compile=compile_)
    return Recognizer(model, options)


def decode_pass(rec: Recognizer, items) -> tuple[float, dict[str, tuple[str, str]]]:
    report = rec.run(items)
    return report.rtf, {r.id: (r.lang, r.text) for r in report.results}


def stages(model, items, dtype: str, batch_seconds: float) -> dict[str, float]:
    """Seconds spent in each stage of one pass, run one stage after another in this process."""
    from hlora_cli.device import DTYPES, autocast

    t = {"audio I/O": 0.0, "features": 0.0, "encoder + LID": 0.0, "routed layers + heads": 0.0, "CTC decoding": 0.0}
    model = Recognizer(model, DecodeOptions(device="cpu", dtype=dtype)).model  # merged, as the decoder runs it
    fps, cast = model.backbone.frames_per_second, DTYPES[dtype]
    batches = duration_batches([it.duration for it in items], batch_seconds, 0, 0, shuffle=False)
    for batch in batches:
        t0 = time.perf_counter()
        wavs = [load_audio(items[i].audio) for i in batch]
        t1 = time.perf_counter()
        feats = model.prepare(wavs)
        t2 = time.perf_counter()
        with torch.no_grad(), autocast(torch.device("cpu"), cast):
            model.identify(feats)  # the shared layers and the LID head alone
            t3 = time.perf_counter()
            out = model(feats, "predicted")
        t4 = time.perf_counter()
        lp, lengths = out.ctc_logprobs.float().numpy(), out.out_lengths.tolist()
        for b, lang in enumerate(out.lang_ids.tolist()):
            vocab = model.vocab(lang)
            greedy_hypothesis(lp[b, : lengths[b], : len(vocab)], vocab, model.languages[lang], fps)
        t5 = time.perf_counter()
        t["audio I/O"] += t1 - t0
        t["features"] += t2 - t1
        t["encoder + LID"] += t3 - t2
        t["routed layers + heads"] += max(0.0, (t4 - t3) - (t3 - t2))  # the full pass less its shared part
        t["CTC decoding"] += t5 - t4
    return t


def cpu_features() -> str:
    """The instructions that decide what bf16 and int8 can gain on this CPU."""
    try:
        flags = set(Path("/proc/cpuinfo").read_text().split("flags", 1)[1].split("\n", 1)[0].split())
    except (OSError, IndexError):
        return "CPU flags unknown"
    wanted = ["avx2", "avx512f", "avx512_vnni", "avx_vnni", "avx512_bf16", "amx_bf16", "amx_int8"]
    have = [f for f in wanted if f in flags]
    return "CPU with " + (", ".join(have) if have else "none of " + ", ".join(wanted))


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", default=str(ROOT / "exp/demo/hlora/best"))
    ap.add_argument("--test", default=str(ROOT / "exp/demo/test.jsonl"))
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--batch-seconds", type=float, default=60.0)
    ap.add_argument("--no-write", action="store_true")
    ap.add_argument("--compile", action="store_true", help="also torch bf16 compiled (hlora decode --compile)")
    args = ap.parse_args()
    if not Path(args.model).is_dir():
        sys.exit(f"{args.model}: no model; run `make demo` first (or give --model and --test)")
    torch.set_num_threads(args.threads)
    items = collect_inputs([args.test])
    refs = {u.id: (u.lang, u.text_norm or u.text) for u in read_manifest(args.test)}
    audio_s = sum(it.duration for it in items)
    model = load_model(args.model)
    tmp = Path(tempfile.mkdtemp(prefix="deploy_speed."))
    for name, int8 in (("fp32", False), ("int8", True)):
        (tmp / name).mkdir()
        export_onnx(model, tmp / name, int8=int8)
    paths = {
        "torch fp32": (model, "fp32"),
        "torch bf16": (model, "bf16"),
        "onnxruntime fp32": (OnnxModel(tmp / "fp32", args.threads), "fp32"),
        "onnxruntime int8": (OnnxModel(tmp / "int8", args.threads), "fp32"),
    }
    recs = {name: recognizer(m, dtype, args.batch_seconds) for name, (m, dtype) in paths.items()}
    if args.compile:
        paths["torch bf16 compiled"] = (model, "bf16")
        recs["torch bf16 compiled"] = recognizer(model, "bf16", args.batch_seconds, compile_=True)
    warm = {}
    for name, rec in recs.items():  # one untimed pass each: the compiled path compiles its shapes here
        t0 = time.perf_counter()
        decode_pass(rec, items)
        warm[name] = time.perf_counter() - t0
    rtfs: dict[str, list[float]] = {name: [] for name in paths}
    hyps: dict[str, dict] = {}
    for _ in range(args.repeats):  # interleaved: drift in machine speed hits every path alike
        for name in paths:
            rtf, hyps[name] = decode_pass(recs[name], items)
            rtfs[name].append(rtf)
    result: dict = {"audio_seconds": round(audio_s, 1), "utterances": len(items), "threads": args.threads}
    rows = []
    fp32_mer = None
    for name in paths:
        s = score(refs, hyps[name])
        mer, cer = 100 * s.average["mer_pooled"], 100 * s.average["cer_pooled"]
        fp32_mer = fp32_mer if fp32_mer is not None else mer
        rtf = statistics.median(rtfs[name])
        result[name.replace(" ", "_")] = {"rtf": round(rtf, 4), "mer": round(mer, 2), "cer": round(cer, 2),
                                           "lid": round(100 * s.lid_accuracy, 1)}  # fmt: skip
        speedup = statistics.median(rtfs["torch fp32"]) / rtf
        loss = 100 * (mer - fp32_mer) / max(fp32_mer, 1e-9)
        rows.append(
            f"| {name} | {rtf:.4f} | {speedup:.2f} | {mer:.1f} | {loss:+.1f} % | {cer:.1f} | "
            f"{100 * s.lid_accuracy:.1f} |"
        )
    where = {}
    for name in ("torch fp32", "onnxruntime int8"):
        m, dtype = paths[name]
        stages(m, items, dtype, args.batch_seconds)  # warm-up
        t = stages(m, items, dtype, args.batch_seconds)
        total = sum(t.values())
        where[name] = {k: round(v / audio_s, 5) for k, v in t.items()}
        where[name]["total_rtf"] = round(total / audio_s, 5)
    result["where_the_time_goes"] = where
    if args.compile:
        compiled, eager = result["torch_bf16_compiled"]["rtf"], result["torch_bf16"]["rtf"]
        result["compiled_over_eager_bf16"] = round(compiled / eager, 3)
        result["compile_pass_seconds"] = round(warm["torch bf16 compiled"], 1)
        result["same_texts_compiled"] = hyps["torch bf16 compiled"] == hyps["torch bf16"]
    best = min(paths, key=lambda n: result[n.replace(" ", "_")]["rtf"])
    result["fastest"] = best
    shutil.rmtree(tmp)
    body = (
        "## Deployment paths on the CPU (`bench/deploy_speed.py`)\n\n"
        f"The demo's HLoRA (Whisper-base, k=3, rank 8) decoding its test set single-pass, greedy: "
        f"{len(items)} utterances, {audio_s:.0f} s of audio (4 languages, voices never heard in training), "
        f"batches of {args.batch_seconds:g} s, {machine()}, {cpu_features()}; RTF is the median of "
        f"{args.repeats} interleaved passes, the decoder's own clock (audio read by one background worker). "
        "Goal: the fastest path at RTF <= 0.008 with <= 1 % relative MER loss.\n\n"
        "| path | RTF | speed-up vs torch fp32 | MER | MER vs the first row | CER | LID acc |\n"
        "|---|---|---|---|---|---|---|\n" + "\n".join(rows) + "\n\n"
        "Where the time goes (seconds per audio second, each stage run alone, no background worker):\n\n"
        "| path | " + " | ".join(next(iter(where.values())).keys()) + " |\n"
        "|---|"
        + "---|" * len(next(iter(where.values())))
        + "\n"
        + "\n".join(f"| {n} | " + " | ".join(f"{v:.4f}" for v in w.values()) + " |" for n, w in where.items())
    )
    if args.compile:
        body += (
            f"\n\nCompiled (`--compile`): RTF {result['torch_bf16_compiled']['rtf']:.4f} against eager bf16's "
            f"{result['torch_bf16']['rtf']:.4f} (ratio {result['compiled_over_eager_bf16']:.2f}); its first pass, "
            f"which compiles every bucketed shape, took {result['compile_pass_seconds']:.0f} s for {audio_s:.0f} s "
            "of audio; texts and languages "
            + ("equal to eager bf16's." if result["same_texts_compiled"] else "differ from eager bf16's.")
        )
    if not args.no_write:
        write_section("deploy_speed", body, result)
    print(json.dumps(result))


if __name__ == "__main__":
    main()
