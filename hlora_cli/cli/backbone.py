"""`hlora backbone ...`: get a backbone without hub access."""

from __future__ import annotations

from pathlib import Path

import typer
from rich.console import Console

app = typer.Typer(help="Backbone utilities.", no_args_is_help=True)


@app.command("import-ct2")
def import_ct2_cmd(
    ct2_dir: Path = typer.Argument(..., help="CTranslate2 Whisper model (faster-whisper format)."),
    out_dir: Path = typer.Argument(..., help="HF transformers Whisper directory to write."),
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace our files in a non-empty OUT_DIR."),
) -> None:
    """Convert a CTranslate2 Whisper model (model.bin, config.json, tokenizer.json) to HF transformers."""
    from hlora_cli.model.ct2 import import_ct2

    out = import_ct2(ct2_dir, out_dir, overwrite=overwrite)
    Console().print(f"wrote {out} (loads with WhisperForConditionalGeneration.from_pretrained, offline)")
