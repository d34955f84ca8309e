"""Scores and RESULTS.md for recipes/real.

results.py score REF DECODE_DIR --hlora BIN --ks "1 3 5" --l1s "2 4" --main-k K
    scores every system whose output is in DECODE_DIR (DECODE_DIR/scores.json, via `hlora score`)
results.py write EXP RESULTS --command CMD --main-k K --main-l1 L1 --s2s-steps N --ctc-steps N
    the tables (per-language MER, pooled, mean, LID, RTF, relative change against zero-shot and
    against shared LoRA), the papers' claims checked against them, the machine and the times.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
from pathlib import Path

LANGS = ("en", "ko", "zh")


def systems(ks: list[str], l1s: list[str], main_k: str) -> list[tuple[str, str, str]]:
    """(file stem, row name, group) in table order; group: zero-shot, seq2seq or ctc."""
    rows = [
        ("zero_shot", "Whisper-base zero-shot, its own LID (en/ko/zh)", "zero-shot"),
        ("zero_shot_given", "Whisper-base zero-shot, language given", "zero-shot"),
        ("s2s_shared_lora", "shared LoRA (standard fine-tuning)", "seq2seq"),
        ("s2s_experts", "experts, language given", "seq2seq"),
    ]
    for l1 in l1s:
        rows += [
            (f"s2s_mole_l1_{l1}_aware", f"MoLE L1={l1}, language given", "seq2seq"),
            (f"s2s_mole_l1_{l1}", f"MoLE L1={l1}, language-agnostic (router)", "seq2seq"),
        ]
    rows += [(f"s2s_student_{kd}", f"student, KD {kd}", "seq2seq") for kd in ("layerwise", "logits", "none")]
    rows += [
        ("s2s_hlora", f"HLoRA k={main_k}, single pass", "seq2seq"),
        ("s2s_hlora_oracle", f"HLoRA k={main_k}, oracle language", "seq2seq"),
        ("ctc_ctc", "S2 ctc: LoRA-free full fine-tune (prefix-token LID)", "ctc"),
        ("ctc_ctc_long", "S2 ctc, the longer run (--ctc-long-steps)", "ctc"),
        ("ctc_shared_lora", "shared-LoRA", "ctc"),
        ("ctc_lidlora_oracle", "S3 LIDLoRA, oracle language", "ctc"),
        ("ctc_two_stage", "S4 LIDLoRA two-stage (ctc model's LID)", "ctc"),
    ]
    rows += [(f"ctc_hlora_k{k}", f"S6 HLoRA k={k}, single pass", "ctc") for k in ks]
    rows += [
        ("ctc_hlora_oracle", f"S5 HLoRA k={main_k}, oracle language", "ctc"),
        ("ctc_hlora_lm", f"HLoRA k={main_k}, single pass + KenLM (3-gram, training text)", "ctc"),
    ]
    return rows


def long_run_name(rows: list[tuple[str, str, str]], exp: Path) -> list[tuple[str, str, str]]:
    """The longer ctc run's row named with its steps (from its train.yaml)."""
    cfg = exp / "ctc/ctc_long/train.yaml"
    if not cfg.is_file():
        return rows
    steps = next(
        (line.split(":", 1)[1].strip() for line in cfg.read_text().splitlines() if line.startswith("max_steps:")), "?"
    )
    return [(s, f"S2 ctc, {steps} steps (the longer run)" if s == "ctc_ctc_long" else n, g) for s, n, g in rows]


def score(args: argparse.Namespace) -> None:
    rows = [
        r for r in systems(args.ks.split(), args.l1s.split(), args.main_k) if (args.dir / f"{r[0]}.jsonl").is_file()
    ]
    if not rows:
        raise SystemExit(f"{args.dir}: no decoded system to score")
    out = args.dir / "scores.json"
    files = [str(args.dir / f"{stem}.jsonl") for stem, _, _ in rows]
    names = ",".join(f"{stem}" for stem, _, _ in rows)
    cmd = [args.hlora, "score", str(args.ref), *files, "--systems", names, "--json", str(out), "--markdown"]
    table = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout
    (args.dir / "table.md").write_text(table)
    print(table)


def join(args: argparse.Namespace) -> None:
    """OUT.jsonl from per-language outputs, and OUT.meta.json with their audio and wall time summed
    (so the joined system's RTF is the whole decode's)."""
    rows, audio, wall = [], 0.0, 0.0
    for part in args.parts:
        rows.append(part.read_text())
        meta = json.loads(part.with_suffix(".meta.json").read_text())
        audio, wall = audio + meta["audio_seconds"], wall + meta["wall_seconds"]
    meta_out = args.out.with_suffix(".meta.json")
    summary = {"joined": [str(p) for p in args.parts], "audio_seconds": audio, "wall_seconds": wall}
    summary["rtf"] = round(wall / audio, 5) if audio else None
    for path, text in ((meta_out, json.dumps(summary, indent=1)), (args.out, "".join(rows))):
        tmp = path.with_name(path.name + ".tmp")
        tmp.write_text(text)
        tmp.replace(path)  # the .jsonl last: its presence means the join is complete


def pct(x: float | None) -> str:
    return "-" if x is None else f"{100 * x:.1f}"


def rel(x: float, base: float | None) -> str:
    """Relative change of an error rate, as the experts paper states its gains (negative = better)."""
    if base is None or base == 0:
        return "-"
    return f"{100 * (x - base) / base:+.1f} %"


def table(scores: dict, rows: list[tuple[str, str, str]], langs: tuple[str, ...]) -> list[str]:
    zs = scores.get("zero_shot_given", scores.get("zero_shot"))
    base = {g: scores.get(f"{'s2s' if g == 'seq2seq' else 'ctc'}_shared_lora") for g in ("seq2seq", "ctc")}
    head = [
        "system",
        *(f"{lang} {'WER' if lang == 'en' else 'CER'}" for lang in langs),
        "pooled",
        "mean",
        "LID acc",
        "RTF",
    ]
    head += ["vs zero-shot (given)", "vs shared LoRA"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    group = None
    for stem, name, g in rows:
        s = scores.get(stem)
        if s is None:
            continue
        if g != group:
            lines.append(f"| **{g}** |" + " |" * (len(head) - 1))
            group = g
        pooled = s["average"]["mer_pooled"]
        cells = [name, *(pct(s["languages"].get(lang, {}).get("mer")) for lang in langs)]
        cells += [pct(pooled), pct(s["average"]["mer"]), pct(s.get("lid_accuracy")), f"{s.get('rtf') or 0:.3f}"]
        b = base.get(g)
        cells += [
            rel(pooled, zs["average"]["mer_pooled"]) if zs and stem != "zero_shot_given" else "-",
            rel(pooled, b["average"]["mer_pooled"]) if b and b is not s else "-",
        ]
        lines.append("| " + " | ".join(cells) + " |")
    return lines


def claims(scores: dict, l1s: list[str], ks: list[str], main_k: str) -> list[str]:
    """The papers' claims and the issue's targets, each checked against this run's numbers."""

    def pooled(stem: str) -> float | None:
        return scores[stem]["average"]["mer_pooled"] if stem in scores else None

    out: list[str] = []

    def check(text: str, a: float | None, b: float | None, gain: float) -> None:
        """`a` at least `gain` relative below `b` (gain < 0: at most -gain above it)."""
        if a is None or b is None:
            out.append(f"- {text}: not measured")
            return
        change = (a - b) / b
        held = change <= -gain
        verdict = "holds" if held else "does not hold"
        out.append(f"- {text}: {100 * a:.1f} against {100 * b:.1f} ({100 * change:+.1f} %) — **{verdict}**")

    shared = pooled("s2s_shared_lora")
    check("experts (language given) >= 10 % relative below seq2seq shared LoRA", pooled("s2s_experts"), shared, 0.10)
    for l1 in l1s:
        check(f"MoLE L1={l1} language-aware >= 10 % below shared LoRA", pooled(f"s2s_mole_l1_{l1}_aware"), shared, 0.10)
        check(f"MoLE L1={l1} language-agnostic >= 15 % below shared LoRA", pooled(f"s2s_mole_l1_{l1}"), shared, 0.15)
    check("student (layer-wise KD) >= 15 % below shared LoRA", pooled("s2s_student_layerwise"), shared, 0.15)
    for stem in (s for s in scores if s.startswith("s2s_")):
        given = stem.endswith(("_aware", "_oracle", "_experts"))  # against zero-shot told the language too
        zs, how = ("zero_shot_given", "language given") if given else ("zero_shot", "its own LID")
        check(f"{stem} >= 25 % below Whisper-base zero-shot ({how})", pooled(stem), pooled(zs), 0.25)
    for prefix in ("s2s_hlora", f"ctc_hlora_k{main_k}"):
        oracle = "s2s_hlora_oracle" if prefix == "s2s_hlora" else "ctc_hlora_oracle"
        check(f"{prefix} single pass within 2 % relative of its oracle", pooled(prefix), pooled(oracle), -0.02)
    check(
        f"CTC HLoRA k={main_k} single pass ahead of two-stage",
        pooled(f"ctc_hlora_k{main_k}"),
        pooled("ctc_two_stage"),
        0.0,
    )
    ctc_rows = {s: v for s, v in scores.items() if s.startswith("ctc_")}
    for lang in ("ko", "zh"):
        best = min(ctc_rows.items(), key=lambda kv: kv[1]["languages"].get(lang, {}).get("mer", 9), default=None)
        if best:
            cer = best[1]["languages"][lang]["mer"]
            out.append(
                f"- best CTC system below 50 % CER on {lang}: {best[0]} {100 * cer:.1f} — "
                f"**{'holds' if cer < 0.5 else 'does not hold'}**"
            )
    return out


def machine() -> str:
    flags = ""
    try:
        text = Path("/proc/cpuinfo").read_text()
        model = next(line.split(":", 1)[1].strip() for line in text.splitlines() if line.startswith("model name"))
        have = set(next(line for line in text.splitlines() if line.startswith("flags")).split())
        flags = ", ".join(f for f in ("avx2", "avx512f", "avx512_bf16", "amx_bf16") if f in have)
    except (OSError, StopIteration):
        model = platform.processor() or "unknown CPU"
    return f"{model}, {os.cpu_count()} cores ({flags})"


def write(args: argparse.Namespace) -> None:
    exp: Path = args.exp
    test = json.loads((exp / "decode/test/scores.json").read_text())
    native_file = exp / "decode/native_en/scores.json"
    native = json.loads(native_file.read_text()) if native_file.is_file() else {}
    ks = sorted({s.removeprefix("ctc_hlora_k") for s in test if s.startswith("ctc_hlora_k")})
    l1s = sorted({s.split("_")[3] for s in test if s.startswith("s2s_mole_l1_")})
    rows = long_run_name(systems(ks, l1s, args.main_k), exp)
    n = (
        {lang: test["zero_shot"]["languages"].get(lang, {}).get("n", 0) for lang in LANGS}
        if "zero_shot" in test
        else {}
    )
    times = (
        [line.split("\t") for line in (exp / "times.tsv").read_text().split("\n") if line]
        if (exp / "times.tsv").is_file()
        else []
    )
    steps, ctc_steps = args.s2s_steps, args.ctc_steps
    lines = [
        "# Results: recipes/real — Whisper-base on real speech in three languages",
        "",
        f"Made by `{args.command}` on {machine()}, torch threads as the CLI sets them.",
        "",
        "Data (human recordings; `--data-root` holds the three repositories as cloned):",
        "- **en**: speechocean762, non-native (Mandarin L1) adults and children; its own train/test split"
        " (disjoint speakers).",
        "- **ko**: Deeply Korean Read Speech Corpus, far-field and reverberant (3 rooms x 3 distances x 2"
        " phones); split by sentence (no sentence in both train and test).",
        "- **zh**: Magic Data Mandarin TTS corpus (customer-service scene), one speaker; split by sentence.",
        f"- Test set: {', '.join(f'{k} {v}' for k, v in n.items())} utterances (random, seeded); the training"
        " side is all of the rest but a small dev set (one sentence in twenty, held out).",
        "",
        "MER: WER for en, CER for ko and zh (after `text_normalization`: zh folded to Simplified characters by"
        " OpenCC, digits scored as written); pooled = errors / reference tokens over every language; mean ="
        " mean of the languages; RTF = decode wall time / audio on this CPU. Greedy decoding everywhere."
        " Relative changes are of the pooled MER (negative = fewer errors), against Whisper-base zero-shot"
        " with the language given and against shared LoRA of the same readout.",
        f"Seq2seq: the whole Whisper (encoder and decoder LoRA), true-length encoder input, experts rank 32"
        f" for {steps} steps of 30 s; shared LoRA and HLoRA {3 * steps} steps (the three experts' compute);"
        f" MoLE: fusion weights and router only; students rank 96 (the experts' ranks together) for {steps}"
        f" steps. CTC: LoRA rank 16, {ctc_steps} steps of 24 s mixed-language batches each; ctc full"
        " fine-tune at lr 1e-4.",
        "",
        "## Test set",
        "",
        *table(test, rows, LANGS),
        "",
        "## The papers' claims on this data",
        "",
        *claims(test, l1s, ks, args.main_k),
    ]
    if native:
        lines += [
            "",
            "## Native English (../shared/data/real's English clips): did tuning on non-native English cost it?",
            "",
            *table(native, rows, ("en",)),
        ]
    if times:
        total = sum(int(t) for _, t in times)
        lines += ["", "## Training wall time (this CPU)", "", "| model | seconds |", "|---|---|"]
        lines += [f"| {name} | {t} |" for name, t in times] + [f"| **total** | {total} |"]
    tmp = args.results.with_suffix(".md.tmp")
    tmp.write_text("\n".join(lines) + "\n")
    tmp.replace(args.results)


README_ROWS = (  # the rows the README quotes, in its order
    "zero_shot",
    "zero_shot_given",
    "s2s_shared_lora",
    "s2s_experts",
    "s2s_mole_l1_2_aware",
    "s2s_mole_l1_2",
    "s2s_student_layerwise",
    "s2s_student_logits",
    "s2s_student_none",
    "s2s_hlora",
    "s2s_hlora_oracle",
    "ctc_ctc",
    "ctc_ctc_long",
    "ctc_shared_lora",
    "ctc_lidlora_oracle",
    "ctc_two_stage",
    "ctc_hlora_k3",
    "ctc_hlora_oracle",
    "ctc_hlora_lm",
)
BEGIN, END = "<!-- recipes/real results: begin -->", "<!-- recipes/real results: end -->"


def readme(args: argparse.Namespace) -> None:
    """The README's table (the main rows of RESULTS.md) and the claims, between its markers."""
    test = json.loads((args.exp / "decode/test/scores.json").read_text())
    ks = sorted({s.removeprefix("ctc_hlora_k") for s in test if s.startswith("ctc_hlora_k")})
    l1s = sorted({s.split("_")[3] for s in test if s.startswith("s2s_mole_l1_")})
    rows = [r for r in long_run_name(systems(ks, l1s, "3"), args.exp) if r[0] in README_ROWS]
    block = [BEGIN, *table(test, rows, LANGS), "", *claims(test, l1s, ks, "3"), END]
    text = args.readme.read_text()
    if BEGIN not in text or END not in text:
        raise SystemExit(f"{args.readme}: no {BEGIN} ... {END} markers")
    head, rest = text.split(BEGIN, 1)
    args.readme.write_text(head + "\n".join(block) + rest.split(END, 1)[1])


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="cmd", required=True)
    s = sub.add_parser("score")
    s.add_argument("ref", type=Path)
    s.add_argument("dir", type=Path)
    s.add_argument("--hlora", required=True)
    s.add_argument("--ks", default="3")
    s.add_argument("--l1s", default="2")
    s.add_argument("--main-k", default="3")
    j = sub.add_parser("join")
    j.add_argument("out", type=Path)
    j.add_argument("parts", type=Path, nargs="+")
    m = sub.add_parser("readme")
    m.add_argument("exp", type=Path)
    m.add_argument("readme", type=Path)
    w = sub.add_parser("write")
    w.add_argument("exp", type=Path)
    w.add_argument("results", type=Path)
    w.add_argument("--command", required=True)
    w.add_argument("--main-k", default="3")
    w.add_argument("--main-l1", default="2")
    w.add_argument("--s2s-steps", type=int, default=80)
    w.add_argument("--ctc-steps", type=int, default=300)
    args = p.parse_args()
    {"score": score, "join": join, "write": write, "readme": readme}[args.cmd](args)


if __name__ == "__main__":
    main()
