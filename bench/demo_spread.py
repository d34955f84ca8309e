"""`make demo`'s result across the settings that move a training's trajectory: seeds, torch's
thread count and the CPU kernel set torch picks (ATEN_CPU_CAPABILITY: AVX2 or AVX-512 kernels sum
in other orders; --dtype auto trains in bf16 on AVX-512 kernels where the CPU has AVX512-BF16, in
fp32 on AVX2 kernels, as on an AVX2-only machine). Each row trains the demo's HLoRA with the demo's
own settings (recipes/demo/run.sh stage 3), decodes its test set single-pass and scores CER.

A benchmark, not a test: a row is a whole demo training (about 6 minutes on 2 cores). 1-thread rows
run two at a time, each pinned to a core of its own (their figures depend on the settings, not on
timing; their wall times are marked as run side by side).

Needs `make demo` first (its corpus, vocab and backbone; exp/demo). Usage:
  python bench/demo_spread.py [--seeds 0,1,2] [--threads 1,2] [--kernels auto,avx2,avx512] [--fp32-rows 0:2]
The last line printed is one JSON object; the table also goes to BENCHMARKS.md (section demo_spread).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from bench.common import cpu, write_section  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
HLORA = ROOT / ".venv" / "bin" / "hlora"
GOAL_POINTS, GOAL_WORST_LANGUAGE = 3.0, 40.0  # issue 26: pooled CER within +-3 of the figure, no language above 40


@dataclass
class Row:
    seed: int
    threads: int
    kernels: str  # auto (torch's own choice), avx2, avx512
    dtype: str = "auto"  # auto (the demo's), or fp32 forced (HLORA_CPU_BF16=0)

    @property
    def name(self) -> str:
        return f"seed{self.seed}-t{self.threads}-{self.kernels}-{self.dtype}"

    def env(self) -> dict[str, str]:
        env = {**os.environ, "SEED": str(self.seed)}
        env.pop("ATEN_CPU_CAPABILITY", None)
        env.pop("OMP_NUM_THREADS", None)  # threads follow the cores the row may use (fit_threads)
        if self.kernels != "auto":
            env["ATEN_CPU_CAPABILITY"] = self.kernels
        if self.dtype == "fp32":
            env["HLORA_CPU_BF16"] = "0"
        else:
            env.pop("HLORA_CPU_BF16", None)
        return env


def run_row(row: Row, demo: Path, out: Path, core: int | None) -> subprocess.Popen:
    """Start one row: the demo's training (stage 3), then single-pass decoding and scoring."""
    exp = out / row.name
    if not (exp / ".done.3").exists():  # a row whose training ended is decoded again, not retrained
        shutil.rmtree(exp, ignore_errors=True)
        exp.mkdir(parents=True)
        for name in ("train.jsonl", "test.jsonl", "vocab.json"):
            (exp / name).symlink_to((demo / name).resolve())
    script = (
        f"set -e; bash {ROOT}/recipes/demo/run.sh --stage 3 --stop-stage 3; "
        f"{HLORA} decode {exp}/test.jsonl --model {exp}/hlora/best --mode single -o {exp}/single.jsonl; "
        f"{HLORA} score {exp}/test.jsonl {exp}/single.jsonl --metric cer --json {exp}/scores.json"
    )
    pin = None if core is None else (lambda: os.sched_setaffinity(0, {core}))
    log = open(exp / "log.txt", "a")  # noqa: SIM115 (closed with the process)
    return subprocess.Popen(
        ["bash", "-c", script], env={**row.env(), "EXP": str(exp)}, stdout=log, stderr=subprocess.STDOUT, preexec_fn=pin
    )


def result(row: Row, out: Path, seconds: float, side_by_side: bool) -> dict:
    exp = out / row.name
    scores = json.loads((exp / "scores.json").read_text())
    system = scores if "languages" in scores else next(iter(scores.values()))  # one system: its own table
    log = (exp / "log.txt").read_text().splitlines()
    dtype_line = next((x for x in log if x.startswith("dtype ")), "")
    warnings = [x for x in log if x.startswith("warning: ")]
    return {
        "row": row.name,
        "seed": row.seed,
        "threads": row.threads,
        "kernels": row.kernels,
        "dtype": dtype_line.split(":")[0].removeprefix("dtype ") or row.dtype,
        "cer": {lang: round(100 * v["cer"], 1) for lang, v in sorted(system["languages"].items())},
        "pooled": round(100 * system["average"]["cer_pooled"], 1),
        "plateau_warnings": len(warnings),
        "minutes": round(_training_seconds(log) / 60, 1),
        "wall_minutes": round(seconds / 60, 1),
        "side_by_side": side_by_side,
    }


def _training_seconds(log: list[str]) -> float:
    """The training's own time, from the table `hlora train` ends with ("│ time │ 332 s │")."""
    found = [m for m in map(TIME_ROW.search, log) if m]
    return float(found[-1].group(1)) if found else float("nan")


TIME_ROW = re.compile(r"^[│|]\s*time\s*[│|]\s*(\d+) s\s*[│|]")


def plan(args: argparse.Namespace) -> list[Row]:
    seeds = [int(x) for x in args.seeds.split(",")]
    threads = [int(x) for x in args.threads.split(",")]
    kernels = args.kernels.split(",") if args.kernels else default_kernels()
    rows = []
    for spec in filter(None, (args.fp32_rows or "").split(",")):  # first: the failing setting
        seed, t = (int(x) for x in spec.split(":"))
        rows.append(Row(seed, t, "auto", "fp32"))
    rows += [Row(s, t, k) for k in kernels for t in sorted(threads, reverse=True) for s in seeds]
    return rows


def default_kernels() -> list[str]:
    """auto and avx2, and avx512 where the CPU has it and torch's own choice is not that already."""
    import torch

    auto = torch.backends.cpu.get_cpu_capability()
    flags = set(Path("/proc/cpuinfo").read_text().split()) if Path("/proc/cpuinfo").exists() else set()
    kernels = ["auto"] + ([] if auto == "AVX2" else ["avx2"])
    if "avx512f" in flags and not auto.startswith("AVX512"):
        kernels.append("avx512")
    return kernels


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--demo", type=Path, default=ROOT / "exp" / "demo", help="make demo's exp directory")
    ap.add_argument("--out", type=Path, default=ROOT / "exp" / "demo_spread")
    ap.add_argument("--seeds", default="0,1,2")
    ap.add_argument("--threads", default="1,2")
    ap.add_argument("--kernels", default=None, help="auto,avx2,avx512 (default: those that differ on this CPU)")
    ap.add_argument("--fp32-rows", default="", help="SEED:THREADS,... also trained in fp32 on torch's own kernels")
    ap.add_argument("--fresh", action="store_true", help="run every row again (default: keep rows done before)")
    args = ap.parse_args()
    for name in ("train.jsonl", "test.jsonl", "vocab.json"):
        if not (args.demo / name).exists():
            sys.exit(f"{args.demo / name}: not found; run `make demo` first")
    cores = sorted(os.sched_getaffinity(0))
    rows = plan(args)
    done_file = args.out / "results.jsonl"  # a row's result as it ends: a killed run keeps what it measured
    if args.fresh:
        done_file.unlink(missing_ok=True)
    done = {x["row"]: x for x in map(json.loads, done_file.read_text().splitlines())} if done_file.exists() else {}
    for name, x in done.items():  # the training's own minutes, read again from its log
        log = args.out / name / "log.txt"
        if log.exists():
            x["minutes"] = round(_training_seconds(log.read_text().splitlines()) / 60, 1)
    results = [done[r.name] for r in rows if r.name in done]
    print(f"{len(rows)} rows on {cpu()} ({len(results)} done before)", flush=True)
    pending = [r for r in rows if r.name not in done]
    while pending:
        row = pending.pop(0)
        batch = [row]
        if row.threads == 1:  # a second 1-thread row beside it, on the other core
            more = next((r for r in pending if r.threads == 1), None)
            if more is not None and len(cores) >= 2:
                pending.remove(more)
                batch.append(more)
        start = time.time()
        free = list(cores)
        procs = [run_row(r, args.demo, args.out, free.pop(0) if r.threads == 1 else None) for r in batch]
        for r, p in zip(batch, procs, strict=True):
            if p.wait() != 0:
                sys.exit(f"{args.out / r.name / 'log.txt'}: the row failed (exit {p.returncode})")
        seconds = time.time() - start
        for r in batch:
            results.append(result(r, args.out, seconds, len(batch) > 1))
            x = results[-1]
            with open(done_file, "a") as f:
                f.write(json.dumps(x) + "\n")
            print(f"{x['row']:28s} {x['dtype']:5s} " + " ".join(f"{k} {v:5.1f}" for k, v in x["cer"].items())
                  + f"  pooled {x['pooled']:5.1f}  {x['minutes']} min", flush=True)  # fmt: skip
    report(results)


def report(results: list[dict]) -> None:
    pooled = [x["pooled"] for x in results]
    mean = statistics.mean(pooled)
    worst_lang = max(v for x in results for v in x["cer"].values())
    summary = {
        "rows": len(results),
        "pooled_mean": round(mean, 1),
        "pooled_std": round(statistics.pstdev(pooled), 1),
        "pooled_min": min(pooled),
        "pooled_max": max(pooled),
        "max_distance_from_mean": round(max(abs(p - mean) for p in pooled), 1),
        "worst_language_cer": worst_lang,
        "goal_met": max(abs(p - mean) for p in pooled) <= GOAL_POINTS and worst_lang <= GOAL_WORST_LANGUAGE,
        "cpu": cpu(),
    }
    langs = sorted(results[0]["cer"])
    lines = [
        "## `make demo` across seeds, threads and CPU kernels (`bench/demo_spread.py`)",
        "",
        f"CPU: {summary['cpu']}. Each row: the demo's HLoRA training (recipes/demo/run.sh stage 3), "
        "single-pass decoding of its test set, CER (%). kernels: torch's ATEN_CPU_CAPABILITY (auto: its own "
        "choice); dtype: what `--dtype auto` chose (fp32 rows forced with HLORA_CPU_BF16=0). Minutes of 1-thread "
        "rows were measured two rows side by side, each on a core of its own.",
        "",
        "| seed | threads | kernels | dtype | " + " | ".join(langs) + " | pooled | plateau warnings | minutes |",
        "|---" * (7 + len(langs)) + "|",
    ]
    for x in results:
        cells = [str(x["seed"]), str(x["threads"]), x["kernels"], x["dtype"], *(f"{x['cer'][k]:.1f}" for k in langs)]
        minutes = f"{x['minutes']}" + " (side by side)" * x["side_by_side"]
        cells += [f"{x['pooled']:.1f}", str(x["plateau_warnings"]), minutes]
        lines.append("| " + " | ".join(cells) + " |")
    lines += [
        "",
        f"Pooled CER {summary['pooled_mean']} ± {summary['pooled_std']} (min {summary['pooled_min']}, max "
        f"{summary['pooled_max']}; farthest row {summary['max_distance_from_mean']} points from the mean); worst "
        f"language in any row: {worst_lang}. Goal (issue 26): every row within ±{GOAL_POINTS:g} points, no language "
        f"above {GOAL_WORST_LANGUAGE:g}: {'met' if summary['goal_met'] else 'not met'}.",
    ]
    print("\n".join(lines))
    write_section("demo_spread", "\n".join(lines), {**summary, "results": results})
    print(json.dumps(summary))


if __name__ == "__main__":
    main()
