"""Score tables: rich, markdown, JSON, and a LID confusion plot."""

from __future__ import annotations

from pathlib import Path

from rich.table import Table

from hlora_cli.files import atomic_write, json_text
from hlora_cli.score.metrics import SetScore


def _pct(x: float) -> str:
    return f"{100 * x:.1f}"


def rows(sets: dict[str, SetScore]) -> tuple[list[str], list[list[str]]]:
    """Header and rows: one row per language plus the average; per set n, WER, CER, MER, S/D/I (%)."""
    header = ["language"]
    for name in sets:
        prefix = f"{name} " if len(sets) > 1 else ""
        header += [f"{prefix}{col}" for col in ("n", "WER", "CER", "MER", "S/D/I")]
    langs = sorted({lang for s in sets.values() for lang in s.languages})
    body = []
    for lang in langs:
        row = [lang]
        for s in sets.values():
            v = s.languages.get(lang)
            row += [str(v.n), _pct(v.wer), _pct(v.cer), _pct(v.mer), f"{v.sub}/{v.dele}/{v.ins}"] if v else ["-"] * 5
        body.append(row)
    avg = ["average (mean)"]
    for s in sets.values():
        avg += [
            str(sum(v.n for v in s.languages.values())),
            _pct(s.average["wer"]),
            _pct(s.average["cer"]),
            _pct(s.average["mer"]),
            "",
        ]
    body.append(avg)
    pooled = ["pooled"]
    for s in sets.values():
        pooled += ["", _pct(s.average["wer_pooled"]), _pct(s.average["cer_pooled"]), _pct(s.average["mer_pooled"]), ""]
    body.append(pooled)
    if any(s.lid_accuracy is not None for s in sets.values()):
        lid = ["LID accuracy"]
        for s in sets.values():
            lid += ["", "", "", _pct(s.lid_accuracy) if s.lid_accuracy is not None else "-", ""]
        body.append(lid)
    return header, body


def rich_table(sets: dict[str, SetScore], title: str = "error rates (%)") -> Table:
    header, body = rows(sets)
    table = Table(title=title)
    for i, h in enumerate(header):
        table.add_column(h, justify="left" if i == 0 else "right")
    for r in body:
        table.add_row(*r, style="bold" if r[0] in ("pooled", "average (mean)", "LID accuracy") else None)
    return table


def markdown(sets: dict[str, SetScore]) -> str:
    header, body = rows(sets)
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(r) + " |" for r in body]
    return "\n".join(lines) + "\n"


def write_json(sets: dict[str, SetScore], path: Path) -> None:
    data = next(iter(sets.values())).to_json() if len(sets) == 1 else {n: s.to_json() for n, s in sets.items()}
    text = json_text(data, indent=1) + "\n"
    atomic_write(path, lambda p: p.write_text(text, encoding="utf-8"))


def plot_confusion(confusion: dict[str, dict[str, int]], path: Path, title: str = "LID confusion") -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    refs = sorted(confusion)
    hyps = sorted({h for row in confusion.values() for h in row} | set(refs))
    grid = [[confusion[r].get(h, 0) for h in hyps] for r in refs]
    fig, ax = plt.subplots(figsize=(1 + 0.6 * len(hyps), 1 + 0.5 * len(refs)))
    ax.imshow(grid, cmap="Blues")
    ax.set_xticks(range(len(hyps)), hyps)
    ax.set_yticks(range(len(refs)), refs)
    ax.set_xlabel("predicted")
    ax.set_ylabel("reference")
    ax.set_title(title)
    for i, row in enumerate(grid):
        for j, v in enumerate(row):
            if v:
                ax.text(j, i, str(v), ha="center", va="center", color="black")
    fig.tight_layout()
    atomic_write(path, lambda p: fig.savefig(p, format="png", dpi=120))
    plt.close(fig)


def systems_rows(
    rows: dict[str, tuple[SetScore, float | None]], metric: str = "mer"
) -> tuple[list[str], list[list[str]]]:
    """One row per system: `metric` per language (MER: CER for ja/ko/th/zh, WER otherwise), pooled
    over every reference unit of every language (the papers' Avg), the mean over languages, LID
    accuracy, real-time factor."""
    langs = sorted({lang for s, _ in rows.values() for lang in s.languages})
    header = ["system", *langs, "pooled", "mean", "LID acc", "RTF"]
    body = []
    for name, (s, rtf) in rows.items():
        cells = [_pct(getattr(s.languages[lang], metric)) if lang in s.languages else "-" for lang in langs]
        lid = _pct(s.lid_accuracy) if s.lid_accuracy is not None else "-"
        averages = [_pct(s.average[f"{metric}_pooled"]), _pct(s.average[metric])]
        body.append([name, *cells, *averages, lid, f"{rtf:.4f}" if rtf is not None else "-"])
    return header, body


def systems_table(rows: dict[str, tuple[SetScore, float | None]], metric: str = "mer") -> Table:
    header, body = systems_rows(rows, metric)
    titles = {"mer": "MER (%): CER for ja/ko/th/zh, WER otherwise", "cer": "CER (%)", "wer": "WER (%)"}
    table = Table(title=titles[metric])
    for i, h in enumerate(header):
        table.add_column(h, justify="left" if i == 0 else "right")
    for r in body:
        table.add_row(*r)
    return table


def systems_markdown(rows: dict[str, tuple[SetScore, float | None]], metric: str = "mer") -> str:
    header, body = systems_rows(rows, metric)
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    return "\n".join(lines + ["| " + " | ".join(r) + " |" for r in body]) + "\n"
