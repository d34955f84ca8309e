"""`hlora info MODEL_DIR`: what a model directory holds."""

from __future__ import annotations

from pathlib import Path

import typer
from rich.console import Console
from rich.table import Table

from hlora_cli.model import load_model


def info(
    model_dir: Path = typer.Argument(..., help="A model directory (config.json + the trained weights)."),
    backbone: str = typer.Option(None, help="Load the backbone from here instead of the saved reference."),
) -> None:
    """Show a model's backbone, type, layer layout, languages, units and parameter counts."""
    from hlora_cli.model.checkpoint import check_model_dir

    check_model_dir(model_dir)
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
        ("layout", model.layout.describe()),
        ("k (shared lower layers)", str(cfg.k) if cfg.model_type == "hlora" else "-"),
        *_experts(model),
        ("LID", _lid(model)),
        ("languages", ", ".join(cfg.languages)),
        ("LoRA", _lora(model)),
        *_output(model),
        ("weights file", _weights(model_dir, cfg)),
        ("trainable parameters", f"{trainable:,}"),
        ("frozen parameters", f"{frozen:,}"),
    ]
    for key, value in rows:
        table.add_row(key, value)
    Console().print(table)


def _output(model) -> list[tuple[str, str]]:
    """What writes the text: CTC heads and their units, or Whisper's decoder."""
    cfg = model.config
    if cfg.seq2seq:
        n = len(model.backbone.decoder_layers())
        return [
            ("decoder", f"Whisper's: {n} layers, {cfg.layout.decoder} LoRA, {len(model.backbone.tokenizer)} tokens"),
            ("encoder input", cfg.encoder_input),
        ]
    units = "bpe (" + ", ".join(sorted(cfg.bpe_models)) + ")" if cfg.bpe_models else "characters"
    return [("CTC heads", ", ".join(f"{n}" for n in model.readout.vocab_sizes) + " tokens"), ("units", units)]


def _lid(model) -> str:
    cfg = model.config
    if model.readout.tells_language:
        return "the CTC posteriors of the <xx> prefix tokens"
    if model.one_language:
        return f"none needed: one language ({cfg.languages[0]})"
    if model.lid_head is None:
        return "none (the language is given: oracle or two-stage)"
    head = f"{cfg.lid.pooling}-pooled MLP" if cfg.lid.head == "pooled" else "per-frame softmax, averaged"
    return f"after layer {model.lid_after} ({head})"


def _experts(model) -> list[tuple[str, str]]:
    """mole and student: the experts they came from; mole: its fused layers and their weights."""
    cfg = model.config
    rows = [("experts", ", ".join(cfg.experts))] if cfg.experts else []
    if model.fusion is not None:
        rows.append(("l1 (fused lower layers)", str(cfg.l1)))
        for i in range(len(model.layout.fused)):
            w = model.fusion_weights(i).tolist()
            rows.append((f"fusion weights, layer {i + 1}", ", ".join(f"{x:.3f}" for x in w)))
    return rows


def _lora(model) -> str:
    cfg = model.config
    if cfg.model_type == "ctc":
        return "none: a full fine-tune (the directory holds every trained encoder weight)"
    return f"rank {cfg.lora.rank}, alpha {cfg.lora.alpha:g}, targets {', '.join(cfg.lora.targets)}"


def _weights(model_dir: Path, cfg) -> str:
    from hlora_cli.model.checkpoint import weights_file

    path = Path(model_dir) / weights_file(cfg)
    return f"{path.name} ({path.stat().st_size / 1e6:.1f} MB)"
