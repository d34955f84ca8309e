"""`hlora score REF HYP`: WER, CER and MER per language, LID accuracy and confusion."""

from __future__ import annotations

import json
from pathlib import Path

import typer
from rich.console import Console

from hlora_cli.data.manifest import read_manifest
from hlora_cli.errors import HloraError
from hlora_cli.score.metrics import SetScore, score
from hlora_cli.score.report import markdown, plot_confusion, rich_table, write_json


def read_hyps(path: Path) -> dict[str, tuple[str | None, str]]:
    """Decode JSONL (id, lang, text) or a Kaldi text file (id text)."""
    from hlora_cli.data.importers import read_text

    if not path.exists():
        raise HloraError(f"{path}: hypothesis file not found")
    lines = read_text(path).split("\n")  # a byte-order mark dropped: `{` starts a JSON line still
    out: dict[str, tuple[str | None, str]] = {}
    for n, line in enumerate(lines, 1):
        if not line.strip():
            continue
        if line.lstrip().startswith("{"):
            try:
                d = json.loads(line)
                utt, lang, text = str(d["id"]), d.get("lang"), d["text"]
            except (json.JSONDecodeError, KeyError, TypeError) as e:
                raise HloraError(f"{path}:{n}: expected a JSON object with id and text ({e})") from e
            if not isinstance(text, str):
                raise HloraError(f"{path}:{n}: the text of {utt} is {json.dumps(text)}, not a string")
            if lang is not None and not isinstance(lang, str):
                raise HloraError(f"{path}:{n}: the lang of {utt} is {json.dumps(lang)}, not a string")
        else:
            utt, *rest = line.split(maxsplit=1)  # Kaldi: the id, then a space or a tab
            text, lang = rest[0] if rest else "", None
        if utt in out:
            raise HloraError(f"{path}:{n}: duplicate hypothesis id {utt}")
        out[utt] = (lang, text)
    return out


def score_files(ref: Path, hyp: Path, missing_as_empty: bool = False) -> SetScore:
    refs = {u.id: (u.lang, u.text) for u in read_manifest(ref)}
    try:
        return score(refs, read_hyps(hyp), missing_as_empty)
    except HloraError as e:
        raise HloraError(f"{ref} vs {hyp}: {e}") from e


def score_cmd(
    pairs: list[Path] = typer.Argument(..., help="REF HYP [REF2 HYP2 ...]: manifests and decode outputs."),
    names: str = typer.Option(None, help="Names of the sets, comma-separated (default: dev,test for two)."),
    systems: str = typer.Option(
        None,
        help="REF HYP1 HYP2 ...: one reference, one row per system (comma-separated "
        "names), with per-language MER, LID accuracy and real-time factor.",
    ),
    metric: str = typer.Option("mer", help="With --systems: the error rate shown, mer, cer or wer."),
    as_markdown: bool = typer.Option(False, "--markdown", help="Print a markdown table."),
    json_out: Path = typer.Option(None, "--json", help="Write per-language wer, cer, mer, n and lid_accuracy."),
    plot: Path = typer.Option(None, "--plot", help="PNG of the LID confusion (first set)."),
    missing_as_empty: bool = typer.Option(
        False, "--missing-as-empty", help="Score references without a hypothesis (e.g. skipped files) as empty."
    ),
) -> None:
    """Score hypotheses against references per language, after text normalization."""
    from hlora_cli.files import check_output

    for path, what in ((json_out, "--json output"), (plot, "--plot output")):
        if path is not None:
            check_output(path, pairs, what)
    if systems is not None:
        if metric not in ("mer", "cer", "wer"):
            raise HloraError(f"--metric {metric}: choose mer, cer or wer")
        return _systems(pairs, systems.split(","), as_markdown, json_out, metric, missing_as_empty)
    if len(pairs) % 2:
        raise HloraError("give REF HYP pairs (an even number of files)")
    n = len(pairs) // 2
    labels = names.split(",") if names else (["dev", "test"] if n == 2 else [f"set{i + 1}" for i in range(n)])
    if len(labels) != n:
        raise HloraError(f"--names has {len(labels)} names for {n} set(s)")
    sets = {label: score_files(pairs[2 * i], pairs[2 * i + 1], missing_as_empty) for i, label in enumerate(labels)}
    console = Console()
    _report_missing(console, sets)
    if as_markdown:
        print(markdown(sets), end="")
    else:
        console.print(rich_table(sets))
    if json_out:
        write_json(sets, json_out)
    if plot:
        first = next(iter(sets.values()))
        if first.confusion is None:
            raise HloraError(f"{pairs[1]}: no `lang` per utterance, so no LID confusion to plot")
        plot_confusion(first.confusion, plot)


def _report_missing(console: Console, sets: dict[str, SetScore]) -> None:
    for label, s in sets.items():
        if s.missing:
            console.print(f"{label}: {s.missing} reference(s) without a hypothesis scored as empty (all deletions)")


def _read_meta(path: Path) -> dict:
    """A decode's OUT.meta.json (its RTF), {} when there is none."""
    if not path.exists():
        return {}
    try:
        meta = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise HloraError(f"{path}: not a decode's meta file (not JSON: {e}); remove it or decode again") from e
    if not isinstance(meta, dict):
        raise HloraError(f"{path}: not a decode's meta file (expected a JSON object)")
    return meta


def _systems(
    paths: list[Path], names: list[str], as_markdown: bool, json_out: Path | None, metric: str, missing_as_empty: bool
) -> None:
    from hlora_cli.infer.output import meta_path
    from hlora_cli.score.report import systems_markdown, systems_table

    ref, hyps = paths[0], paths[1:]
    if len(names) != len(hyps):
        raise HloraError(f"--systems has {len(names)} names for {len(hyps)} hypothesis file(s)")
    rows = {}
    for name, hyp in zip(names, hyps, strict=True):
        meta = _read_meta(meta_path(hyp))
        rtf = meta.get("rtf")
        rows[name] = (score_files(ref, hyp, missing_as_empty), rtf if isinstance(rtf, (int, float)) else None)
    _report_missing(Console(stderr=True), {n: r[0] for n, r in rows.items()})
    if as_markdown:
        print(systems_markdown(rows, metric), end="")
    else:
        Console().print(systems_table(rows, metric))
    if json_out:
        from hlora_cli.files import atomic_write, json_text

        data = {n: {**s.to_json(), "rtf": rtf} for n, (s, rtf) in rows.items()}
        text = json_text(data, indent=1) + "\n"
        atomic_write(json_out, lambda p: p.write_text(text, encoding="utf-8"))
