"""`hlora lm build`: per-language KenLM n-gram models from normalized text."""

from __future__ import annotations

from pathlib import Path

import typer
from rich.console import Console

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
    texts = texts_by_language(manifests)
    wanted = [x.strip() for x in languages.split(",")] if languages else sorted(texts)
    console = Console()
    for lang in wanted:
        files = build_lm(
            texts.get(lang, []), out_dir / lang, order, [int(x) for x in prune.split(",")] if prune else None, binary
        )
        console.print(f"{lang}: {len(texts.get(lang, []))} lines -> {', '.join(str(f) for f in files)}")
