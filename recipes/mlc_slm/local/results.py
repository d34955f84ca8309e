"""RESULTS.md for recipes/mlc_slm: the HLoRA paper's table (S1-S8) and its k ablation, our run's
numbers next to the paper's own.

    results.py EXP OUT.md --k K --ks "1 3 6 9 11" --command "..."

Reads EXP/decode_{dev,test}/scores.json and *.meta.json (written by the recipe's stages 5-6),
EXP/ablate/ablation.json and the model directories (for parameter counts). Error rates are the
pooled MER (errors over reference units of every language, as the paper's Avg and the MLC-SLM
challenge compute them); the mean over languages is given beside it.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

# The paper's numbers (HLoRA paper, tables 1 and 2; see ../../../shared/reference/hlora_readme.md).
PAPER = {  # id: (params M, dev, test)
    "S1": (97, 44.5, 43.7),
    "S2": (97, 22.5, 21.6),
    "S3": (107, 24.6, 23.0),
    "S4": (107, 26.6, 24.8),
    "S5": (102, 26.0, 24.0),
    "S6": (102, 26.3, 24.7),
    "S7": (74, 37.2, 35.4),
    "S8": (244, 29.7, 28.6),
}
PAPER_ABLATION = {  # language: {k: (dev, test)}
    "en": {1: (40.5, 48.1), 3: (33.8, 36.6), 6: (29.0, 26.6), 9: (29.2, 25.2), 11: (28.9, 25.3)},
    "fr": {1: (26.6, 33.9), 3: (26.3, 33.2), 6: (26.1, 31.7), 9: (26.4, 32.0), 11: (26.3, 32.2)},
    "de": {1: (61.2, 54.3), 3: (54.9, 44.1), 6: (39.1, 32.9), 9: (39.5, 32.6), 11: (39.8, 33.4)},
    "ja": {1: (37.3, 41.0), 3: (32.6, 37.0), 6: (25.0, 27.8), 9: (25.5, 23.6), 11: (25.7, 24.7)},
    "ko": {1: (17.9, 16.5), 3: (17.5, 16.0), 6: (17.2, 16.1), 9: (17.7, 16.6), 11: (18.1, 16.9)},
    "Avg": {1: (34.8, 36.6), 3: (31.3, 32.1), 6: (26.0, 26.0), 9: (26.3, 24.7), 11: (26.5, 25.2)},
}
# id, system, decode output name, model directory (below EXP) or None, LID known?, passes
ROWS = [
    ("S1", "mHuBERT-CTC on MSR-1500h", None, None, "×", "single"),
    ("S2", "mHuBERT-CTC (LoRA-free, fully fine-tuned)", "s2_ctc", "ctc/best", "×", "single"),
    ("S3", "mHuBERT-CTC-LIDLoRA, oracle", "s3_lidlora_oracle", "lidlora/best", "√", "single"),
    ("S4", "mHuBERT-CTC-LIDLoRA, two-stage (S2 LID)", "s4_two_stage", "lidlora/best", "×", "double"),
    ("S5", "mHuBERT-CTC-HLoRA k={k}, oracle", "s5_hlora_oracle", "ablate/k{k}/best", "√", "single"),
    ("S6", "mHuBERT-CTC-HLoRA k={k}", "s6_hlora", "ablate/k{k}/best", "×", "single"),
    ("S7", "Whisper-base zero-shot", "s7_whisper_base", None, "×", "single"),
    ("S8", "Whisper-small zero-shot", "s8_whisper_small", None, "×", "single"),
]


def pct(x: float | None) -> str:
    return "–" if x is None else f"{100 * x:.1f}"


def params_m(model_dir: Path) -> str:
    """Total parameters (frozen backbone + trainable), in millions, as the paper counts them."""
    if not (model_dir / "config.json").exists():
        return "–"
    from hlora_cli.model.checkpoint import load_model

    trainable, frozen = load_model(model_dir).parameter_counts()
    return f"{(trainable + frozen) / 1e6:.1f}"


def whisper_params_m(meta: Path) -> str:
    if not meta.exists():
        return "–"
    source = json.loads(meta.read_text()).get("whisper", "")
    try:
        from transformers import WhisperForConditionalGeneration

        n = sum(p.numel() for p in WhisperForConditionalGeneration.from_pretrained(source).parameters())
    except (OSError, ValueError):
        return "–"
    return f"{n / 1e6:.1f}"


def system_table(exp: Path, k: int) -> list[str]:
    scores = {s: _load(exp / f"decode_{s}" / "scores.json") for s in ("dev", "test")}
    out = [
        "| ID | system | params (M) | LID known | passes | dev MER | test MER | mean dev / test "
        "| LID acc test | RTF test | paper: params, dev, test |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for sid, name, output, model, known, passes in ROWS:
        name = name.format(k=k)
        paper = "{} M, {}, {}".format(*PAPER[sid])
        got = {s: scores[s].get(output) for s in scores} if output else {"dev": None, "test": None}
        if not any(got.values()):
            why = "not run: needs the MSR-86K subset" if sid == "S1" else "not run"
            out.append(f"| {sid} | {name} | – | {known} | {passes} | {why} | | | | | {paper} |")
            continue
        if model:
            params = params_m(exp / model.format(k=k))
        else:
            params = whisper_params_m(exp / "decode_test" / f"{output}.meta.json")
        pooled = {s: (g or {}).get("average", {}).get("mer_pooled") for s, g in got.items()}
        mean = {s: (g or {}).get("average", {}).get("mer") for s, g in got.items()}
        test = got["test"] or {}
        out.append(
            f"| {sid} | {name} | {params} | {known} | {passes} | {pct(pooled['dev'])} | {pct(pooled['test'])} "
            f"| {pct(mean['dev'])} / {pct(mean['test'])} | {pct(test.get('lid_accuracy'))} "
            f"| {test.get('rtf', float('nan')):.3f} | {paper} |"
        )
    return out


def ablation_table(exp: Path, ks: list[int]) -> list[str]:
    runs = {r["k"]: r for r in _load(exp / "ablate" / "ablation.json", [])}
    langs = sorted({lang for r in runs.values() for lang in r["dev"]["mer"]})
    out = [
        "| language | " + " | ".join(f"k = {k}" for k in ks) + " |",
        "|---|" + "---|" * len(ks),
    ]
    for lang in [*langs, "Avg"]:
        cells = []
        for k in ks:
            r = runs.get(k)
            if r is None:
                ours = "–"
            else:
                dev, test = (_rate(r.get(s), lang) for s in ("dev", "test"))
                ours = f"{pct(dev)} / {pct(test) if 'test' in r else '–'}"
            paper = PAPER_ABLATION.get(lang.split("-")[0], {}).get(k)
            cells.append(f"{ours} ({paper[0]} / {paper[1]})" if paper else ours)
        name = "**Avg** (pooled)" if lang == "Avg" else lang
        out.append(f"| {name} | " + " | ".join(cells) + " |")
    return out


def _rate(result: dict | None, lang: str) -> float | None:
    """One language's MER of an ablation run's set, or its pooled average for "Avg"."""
    if result is None:
        return None
    return result["average"] if lang == "Avg" else result["mer"].get(lang)


def _load(path: Path, default=None):
    return json.loads(path.read_text()) if path.exists() else ({} if default is None else default)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("exp", type=Path)
    ap.add_argument("out", type=Path)
    ap.add_argument("--k", type=int, required=True)
    ap.add_argument("--ks", required=True)
    ap.add_argument("--command", default="")
    ap.add_argument("--note", default="")
    a = ap.parse_args()
    ks = [int(x) for x in a.ks.split()]
    lines = [
        "# Results: recipes/mlc_slm",
        "",
        *([a.note, ""] if a.note else []),
        f"Reproduce: `{a.command}`" if a.command else "",
        "",
        "MER in %: WER for en/fr/de, CER for ja/ko, after text_normalization; dev/test MER pooled over every",
        "reference unit of every language (the paper's Avg and the MLC-SLM challenge's MER), the mean over",
        "languages beside it. RTF: decode wall time / audio. The paper's figures (params in M, dev, test) in",
        "the last column.",
        "",
        "## Systems",
        "",
        *system_table(a.exp, a.k),
        "",
        "## HLoRA ablation over k (k = shared lower layers), single pass",
        "",
        "MER (%) dev / test per language, the paper's in brackets.",
        "",
        *ablation_table(a.exp, ks),
        "",
    ]
    tmp = a.out.with_name(a.out.name + ".tmp")
    tmp.write_text("\n".join(lines), encoding="utf-8")
    tmp.replace(a.out)
    print(f"wrote {a.out}")


if __name__ == "__main__":
    main()
