"""Whisper decoding on the CPU, side by side on one set: zero-shot (`hlora decode --whisper`:
Whisper detects the language, every utterance padded to 30 s) against a seq2seq model decoded
single pass (its router or LID head picks the language and the routed LoRA, the decoder is forced
to that language's token; its own encoder input, 30 s or true length). Both greedy, with the same
token budget. Prints the median RTF of interleaved passes and the pooled MER of each.

Default: recipes/tts_ml stage 9's shared-LoRA and MoLE models on the real clips of its languages.
Usage: python bench/seq2seq_speed.py [--model DIR ...] [--test MANIFEST] [--threads 2] [--repeats 3]
The last line printed is one JSON object; the results also go to BENCHMARKS.md (section seq2seq_speed).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from bench.common import machine, time_interleaved, write_section  # noqa: E402
from hlora_cli.data.manifest import read_manifest  # noqa: E402
from hlora_cli.infer.inputs import collect_inputs  # noqa: E402
from hlora_cli.infer.options import DecodeOptions  # noqa: E402
from hlora_cli.infer.runner import Recognizer  # noqa: E402
from hlora_cli.infer.whisper_zero_shot import WhisperZeroShot  # noqa: E402
from hlora_cli.model import load_model  # noqa: E402
from hlora_cli.score.metrics import score  # noqa: E402
from text_normalization import normalize  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
# recipes/tts_ml's experiment directory (run.sh --exp): the default one, else the first with stage 9's models
EXP = next((d for d in sorted((ROOT / "exp").glob("tts_ml*")) if (d / "seq2seq").is_dir()), ROOT / "exp" / "tts_ml")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", action="append", default=None, help="seq2seq model directories (repeatable)")
    p.add_argument("--test", default=str(EXP / "real.jsonl"))
    p.add_argument("--whisper", default=str(Path.home() / ".cache" / "hlora" / "whisper-base"))
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--repeats", type=int, default=3)
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    models = args.model or [str(EXP / "seq2seq" / "shared_lora" / "best"), str(EXP / "seq2seq" / "mole" / "best")]
    items = collect_inputs([args.test])
    refs = {u.id: (u.lang, u.text_norm or u.text) for u in read_manifest(args.test)}
    langs = sorted({lang for lang, _ in refs.values()})
    options = DecodeOptions(num_workers=0, device="cpu")
    runners = {"zero-shot --whisper": WhisperZeroShot(args.whisper, languages=langs, options=options).run}
    for m in models:
        model = load_model(m)
        name = f"{Path(m).parent.name} ({model.config.encoder_input}, single pass)"
        runners[name] = Recognizer(model, options).run
    reports = {name: run(items) for name, run in runners.items()}
    times = time_interleaved({name: (lambda r=run: r(items)) for name, run in runners.items()}, args.repeats, 0)
    audio = sum(u.duration or 0 for u in reports["zero-shot --whisper"].results)
    rows, result = [], {"machine": machine(), "test": args.test, "audio_seconds": round(audio, 2), "systems": {}}
    base = times["zero-shot --whisper"]
    for name, report in reports.items():
        hyps = {r.id: (r.lang, normalize(r.text, r.lang)) for r in report.results}
        mer = score(refs, hyps).average["mer_pooled"] * 100
        rtf = times[name] / audio
        result["systems"][name] = {"rtf": round(rtf, 4), "mer": round(mer, 1), "speedup": round(base / times[name], 2)}
        rows.append(f"| {name} | {rtf:.4f} | {base / times[name]:.1f}x | {mer:.1f} |")
    body = "\n".join(
        [
            "## seq2seq_speed: Whisper decoding, zero-shot against single-pass routed seq2seq (CPU)",
            "",
            f"`python bench/seq2seq_speed.py` on {machine()}: {len(items)} utterances ({audio:.1f} s) of",
            f"`{args.test}`, greedy, 12 tokens/s + 10 at most, median of {args.repeats} interleaved passes.",
            "",
            "| system | RTF | speed-up over zero-shot | MER |",
            "|---|---|---|---|",
            *rows,
        ]
    )
    write_section("seq2seq_speed", body, result)
    print(body)
    print(json.dumps(result))


if __name__ == "__main__":
    main()
