"""`hlora lm build`: per-language KenLM n-gram models from normalized text."""

from __future__ import annotations

from pathlib import Path

import typer
from rich.console import Console

from hlora_cli.data.langs import language_list
from hlora_cli.errors import HloraError
from hlora_cli.infer.lm import build_lm, texts_by_language

app = typer.Typer(help="Language models for beam search.", no_args_is_help=True)


@app.command()
def build(
    manifests: list[Path] = typer.Argument(..., help="Manifest(s) with the training text (text_norm where present)."),
    out_dir: Path = typer.Option(..., "-o", "--out", help="Folder for <lang>.arpa and <lang>.bin."),
    order: int = typer.Option(3, help="n-gram order."),
    prune: str = typer.Option(None, help="lmplz --prune thresholds, e.g. 0,0,1."),
    languages: str = typer.Option(None, help="Only these languages (comma-separated)."),
    binary: bool = typer.Option(True, "--binary/--no-binary", help="Also write the KenLM binary."),
) -> None:
    """Build one n-gram LM per language: OUT/<lang>.arpa and OUT/<lang>.bin (for `decode --lm`)."""
    if out_dir.exists() and not out_dir.is_dir():
        raise HloraError(f"{out_dir}: is a file; -o names the folder for the language models")
    if not 2 <= order <= 10:
        raise HloraError(f"--order {order}: choose 2..10 (KenLM's lmplz, as built here)")
    thresholds = None
    if prune:
        try:
            thresholds = [int(x) for x in prune.split(",")]
        except ValueError:
            raise HloraError(f"--prune {prune}: expected comma-separated integers, e.g. 0,0,1") from None
        if any(t < 0 for t in thresholds) or len(thresholds) > order:
            raise HloraError(f"--prune {prune}: at most {order} non-negative counts (one per order)")
    texts = texts_by_language(manifests)
    from hlora_cli.files import check_output

    for lang in sorted(texts):  # what build_lm writes for each language: none may be an input
        for suffix in (".arpa", ".bin"):
            check_output(out_dir / f"{lang}{suffix}", manifests, "language model")
    if not texts:
        raise HloraError(f"{', '.join(map(str, manifests))}: no text to build a language model from")
    wanted = language_list(languages) if languages else sorted(texts)
    missing = [lang for lang in wanted if not texts.get(lang)]
    if missing:
        raise HloraError(f"no text in language(s) {', '.join(missing)} (the manifests have {', '.join(sorted(texts))})")
    console = Console()
    for lang in wanted:
        files = build_lm(texts[lang], out_dir / lang, order, thresholds, binary)
        console.print(f"{lang}: {len(texts.get(lang, []))} lines -> {', '.join(str(f) for f in files)}")
