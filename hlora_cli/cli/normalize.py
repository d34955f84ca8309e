"""`hlora normalize`: fill `text_norm` in a manifest, or normalize one line of text."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import typer
from rich.console import Console

from hlora_cli.data.manifest import read_manifest, write_manifest
from hlora_cli.errors import HloraError
from text_normalization import normalize as normalize_text


def normalize(
    source: str = typer.Argument(..., help="A JSONL manifest, or (with --lang) one line of text."),
    out: Path = typer.Option(None, "-o", "--out", help="Manifest to write with text_norm filled."),
    lang: str = typer.Option(None, "--lang", help="Normalize SOURCE as text in this language and print it."),
    keep_words: bool = typer.Option(
        False, "--keep-words", help="Keep word spacing (no character splitting, e.g. Korean)."
    ),
    prefix: bool = typer.Option(False, "--prefix", help="Start each line with its language token, e.g. <en>."),
) -> None:
    """Normalize text: NFKC, case folding, punctuation, character spacing for ja/ko/th/zh."""
    if lang is not None:
        print(normalize_text(source, lang, keep_words=keep_words, prefix=prefix))
        return
    if out is None:
        raise HloraError("give -o OUT.jsonl to normalize a manifest, or --lang L to normalize one line of text")
    from hlora_cli.files import check_not_listed, check_output

    check_output(out, [source], "normalized manifest")
    rows = read_manifest(source)
    check_not_listed([out], (u.audio for u in rows))
    utts = [replace(u, text_norm=normalize_text(u.text, u.lang, keep_words=keep_words, prefix=prefix)) for u in rows]
    write_manifest(out, utts)
    Console().print(f"normalized {len(utts)} utterances -> {out}")
