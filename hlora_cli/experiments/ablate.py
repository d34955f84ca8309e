"""The k ablation: one HLoRA per k (k = shared lower layers, as the paper defines it) trained and
decoded single-pass on dev and test, a per-language
table (dev / test error rate per k, the best of each row marked) as markdown and JSON, and a plot.
Resumable: a finished k (DIR/k<K>/done.json) is skipped, an interrupted one resumed."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

from hlora_cli.data.manifest import read_manifest
from hlora_cli.files import atomic_write, json_text
from hlora_cli.infer.inputs import collect_inputs
from hlora_cli.infer.options import DecodeOptions
from hlora_cli.infer.output import write_results
from hlora_cli.infer.runner import Recognizer
from hlora_cli.model import load_model
from hlora_cli.score.metrics import score
from hlora_cli.train.config import TrainConfig
from hlora_cli.train.state import CHECKPOINT
from hlora_cli.train.trainer import Trainer

DONE = "done.json"


def _score_set(model_dir: Path, manifest: str, out: Path, options: DecodeOptions) -> dict:
    items = collect_inputs([manifest])
    report = Recognizer(load_model(model_dir), options).run(items)
    write_results(report.results, out)
    refs = {u.id: (u.lang, u.text) for u in read_manifest(manifest)}
    s = score(refs, {r.id: (r.lang, r.text) for r in report.results})
    return {
        "mer": {lang: v.mer for lang, v in s.languages.items()},
        "average": s.average["mer_pooled"],  # pooled over every reference unit, as the paper's Avg
        "mean": s.average["mer"],
        "lid_accuracy": s.lid_accuracy,
        "rtf": report.rtf,
    }


def run_k(cfg: TrainConfig, k: int, out: Path, test: str | None, options: DecodeOptions) -> dict:
    """Train (or resume) and score one k; returns its done.json content."""
    run_dir = out / f"k{k}"
    if (run_dir / DONE).exists():
        return json.loads((run_dir / DONE).read_text())
    trainer = Trainer(
        replace(cfg, model_type="hlora", k=k),
        run_dir,
        resume=(run_dir / CHECKPOINT).exists(),
        overwrite=not (run_dir / CHECKPOINT).exists(),
    )
    trainer.fit()
    best = run_dir / "best"
    result = {"k": k, "dev": _score_set(best, cfg.dev, run_dir / "dev.jsonl", options)}
    if test:
        result["test"] = _score_set(best, test, run_dir / "test.jsonl", options)
    text = json_text(result, indent=1) + "\n"
    atomic_write(run_dir / DONE, lambda p: p.write_text(text))
    return result


def table(results: list[dict]) -> str:
    """Markdown: rows = languages + Avg; columns = k; cells dev / test (%); best per row in bold."""
    sets = [s for s in ("dev", "test") if all(s in r for r in results)]
    langs = sorted({lang for r in results for lang in r["dev"]["mer"]})

    def cells(get) -> list[str]:
        values = {s: [get(r[s]) for r in results] for s in sets}
        best = {s: min(v for v in values[s] if v is not None) for s in sets}
        out = []
        for i in range(len(results)):
            parts = []
            for s in sets:
                v = values[s][i]
                txt = "-" if v is None else f"{100 * v:.1f}"
                parts.append(f"**{txt}**" if v is not None and v == best[s] else txt)
            out.append(" / ".join(parts))
        return out

    header = "| language | " + " | ".join(f"k = {r['k']}" for r in results) + " |"
    lines = [
        f"Error rate (%) per language, {' / '.join(sets)}; the best of each row in bold. "
        "k = shared lower layers (LID after layer k, layers k+1..N per language).",
        "",
        header,
        "|---|" + "---|" * len(results),
    ]
    for lang in langs:
        lines.append(f"| {lang} | " + " | ".join(cells(lambda s, lang=lang: s["mer"].get(lang))) + " |")
    lines.append("| **Avg** (pooled) | " + " | ".join(cells(lambda s: s["average"])) + " |")
    lines.append(
        "| LID acc | "
        + " | ".join(" / ".join(f"{100 * r[s]['lid_accuracy']:.1f}" for s in sets) for r in results)
        + " |"
    )
    return "\n".join(lines) + "\n"


def plot(results: list[dict], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    ks = [r["k"] for r in results]
    sets = [s for s in ("dev", "test") if all(s in r for r in results)]
    fig, axes = plt.subplots(1, len(sets), figsize=(5 * len(sets), 3.5), squeeze=False)
    for ax, s in zip(axes[0], sets, strict=True):
        for lang in sorted(results[0][s]["mer"]):
            ax.plot(ks, [100 * r[s]["mer"].get(lang, float("nan")) for r in results], marker="o", label=lang)
        ax.plot(ks, [100 * r[s]["average"] for r in results], marker="s", color="black", linewidth=2, label="avg")
        ax.set_xlabel("k (shared lower layers; k+1..N per language)")
        ax.set_ylabel("error rate (%)")
        ax.set_title(s)
        ax.set_xticks(ks)
    axes[0][-1].legend(fontsize=8)
    fig.tight_layout()
    atomic_write(path, lambda p: fig.savefig(p, format="png", dpi=120))
    plt.close(fig)


def ablate(
    cfg: TrainConfig,
    ks: list[int],
    out: Path,
    test: str | None,
    on_done=None,
    options: DecodeOptions | None = None,
) -> list[dict]:
    options = options or DecodeOptions(mode="single")
    results = []
    for k in ks:
        results.append(run_k(cfg, k, out, test, options))
        if on_done:
            on_done(results[-1])
    md = table(results)
    atomic_write(out / "ablation.md", lambda p: p.write_text(md))
    text = json_text(results, indent=1) + "\n"
    atomic_write(out / "ablation.json", lambda p: p.write_text(text))
    plot(results, out / "ablation.png")
    return results
