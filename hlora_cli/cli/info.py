"""`hlora info MODEL_DIR`: what a model directory holds."""

from __future__ import annotations

from pathlib import Path

import typer
from rich.console import Console
from rich.table import Table

from hlora_cli.model import load_model


def info(
    model_dir: Path = typer.Argument(..., help="A model directory (config.json + adapters.safetensors)."),
    backbone: str = typer.Option(None, help="Load the backbone from here instead of the saved reference."),
) -> None:
    """Show a model's backbone, type, languages, k and trainable/frozen parameter counts."""
    model = load_model(model_dir, backbone=backbone)
    cfg = model.config
    trainable, frozen = model.parameter_counts()
    ref = cfg.backbone
    source = ref.source or f"random {ref.kind} config (seed {ref.seed})"
    table = Table(title=str(model_dir), show_header=False)
    rows = [
        ("model type", cfg.model_type),
        ("backbone", f"{ref.kind}: {source}"),
        ("fingerprint", ref.fingerprint),
        ("layers", f"{model.backbone.num_layers} x {model.backbone.hidden_size}"),
        ("k (routed layers)", str(model.plan.count("routed")) if cfg.model_type != "baseline" else "0"),
        ("LID head", f"after layer {model.lid_layer} ({cfg.lid.pooling} pooling)" if model.lid_layer else "none"),
        ("languages", ", ".join(cfg.languages)),
        ("LoRA", f"rank {cfg.lora.rank}, alpha {cfg.lora.alpha:g}, targets {', '.join(cfg.lora.targets)}"),
        ("CTC heads", ", ".join(f"{n}" for n in model.ctc_heads.vocab_sizes) + " tokens"),
        ("trainable parameters", f"{trainable:,}"),
        ("frozen parameters", f"{frozen:,}"),
    ]
    for key, value in rows:
        table.add_row(key, value)
    Console().print(table)
