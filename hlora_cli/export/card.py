"""The model card every `hlora export hf|peft` directory gets (README.md in the Hugging Face
format: YAML metadata, then prose), so that an export can be published as it is: base model,
languages, LoRA layout, the training data and settings the run recorded, and its dev scores."""

from __future__ import annotations

import json
from pathlib import Path

import yaml

from hlora_cli.model import HloraModel


def _run_record(model_dir: Path) -> tuple[dict, dict]:
    """(train.yaml, the last dev evaluation of metrics.jsonl) of the run that saved MODEL_DIR
    (RUN/best or RUN/last); empty where the model directory is not inside a run."""
    run = model_dir.resolve().parent
    settings, last_eval = {}, {}
    try:
        settings = yaml.safe_load((run / "train.yaml").read_text(encoding="utf-8")) or {}
    except (OSError, yaml.YAMLError):
        pass
    try:
        for line in (run / "metrics.jsonl").read_text(encoding="utf-8").splitlines():
            row = json.loads(line)
            if any(k.startswith("dev_") for k in row):
                last_eval = row
    except (OSError, ValueError):
        pass
    return (settings if isinstance(settings, dict) else {}), last_eval


def model_card(model: HloraModel, model_dir: Path, languages: list[str], library: str, what: str) -> str:
    config = model.config
    settings, last_eval = _run_record(Path(model_dir))
    base = config.backbone.source or f"a random {config.backbone.kind} config (seed {config.backbone.seed})"
    meta = {
        "language": languages,
        "library_name": library,
        "pipeline_tag": "automatic-speech-recognition",
        "tags": list(dict.fromkeys(["automatic-speech-recognition", "lora", "hlora", config.model_type])),
    }
    if config.backbone.source and not Path(config.backbone.source).exists():
        meta["base_model"] = config.backbone.source  # a hub id; a local path means nothing to readers
    lora = config.lora
    lines = [
        "---",
        yaml.safe_dump(meta, sort_keys=False, allow_unicode=True).strip(),
        "---",
        "",
        f"# {config.model_type} ({', '.join(languages)}), exported by hlora",
        "",
        what,
        "",
        "## Model",
        "",
        f"- Base model: `{base}` ({model.backbone.num_layers} layers, frozen).",
        f"- Layout: {model.layout.describe()}"
        + (f"; k = {config.k} (shared lower layers, as the HLoRA paper defines k)" if config.k is not None else "")
        + ".",
        f"- LoRA: rank {lora.rank}, alpha {lora.alpha:g}, on {', '.join(lora.targets)}."
        if config.model_type != "ctc"
        else "- No LoRA: the encoder is fully fine-tuned.",
        f"- Languages of the model: {', '.join(config.languages)}; readout: "
        + ("Whisper's decoder." if config.seq2seq else "CTC heads."),
        "",
        "## Training (as the run recorded it)",
        "",
    ]
    if settings:
        keys = ("train", "dev", "max_steps", "epochs", "batch_seconds", "lr", "head_lr", "schedule", "seed")
        lines += [f"- `{k}`: {settings[k]}" for k in keys if settings.get(k) not in (None, "")]
    else:
        lines.append("- Not recorded: the model directory was not inside a training run's directory.")
    lines += ["", "## Dev scores", ""]
    if last_eval:
        scores = {k: v for k, v in last_eval.items() if k.startswith("dev_") and isinstance(v, (int, float))}
        lines.append(f"At step {last_eval.get('step', '?')} of training (CER and LID accuracy as fractions):")
        lines.append("")
        lines += [f"- {k.removeprefix('dev_')}: {v:.4f}" for k, v in sorted(scores.items())]
    else:
        lines.append("- None recorded (the run had no dev set, or its metrics.jsonl is not beside the model).")
    return "\n".join(lines) + "\n"
