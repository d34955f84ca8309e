"""`hlora train`: joint CTC + LID training of ctc, shared-LoRA, LIDLoRA, HLoRA and expert models;
`hlora fuse` and `hlora distill`: the same trainer and flags on models built from experts."""

from __future__ import annotations

import inspect
import os
from collections.abc import Callable
from pathlib import Path

import typer
from rich.console import Console

from hlora_cli.cli.progress import TrainProgress, print_summary
from hlora_cli.errors import HloraError
from hlora_cli.train.config import flag_overrides, load_config
from hlora_cli.train.trainer import Trainer


def train(
    out: Path = typer.Option(
        ..., "--out", "-o", help="RUN_DIR: train.yaml, metrics.jsonl, checkpoint.pt, best/, last/."
    ),
    config: Path = typer.Option(None, "--config", help="YAML with any of the settings below (flags override it)."),
    model_type: str = typer.Option(
        None,
        help="ctc (LoRA-free full fine-tune), shared-lora (alias baseline), lidlora, hlora or expert "
        "(one language's LoRA, rank 64 unless given; give --languages with one code).",
    ),
    k: int = typer.Option(
        None, "--k", help="hlora: shared lower layers, 1..N-1 (1..k shared LoRA, LID after k, k+1..N per language)."
    ),
    freeze_layers: int = typer.Option(None, help="ctc: also keep the lowest N transformer layers frozen."),
    gradient_checkpointing: bool = typer.Option(
        None, "--gradient-checkpointing/--no-gradient-checkpointing", help="Recompute activations: less memory."
    ),
    backbone: str = typer.Option(None, help="HF encoder: local directory or hub id (Whisper, HuBERT, wav2vec2)."),
    backbone_mode: str = typer.Option(
        None, help="ctc (CTC heads) or seq2seq (Whisper's own decoder with LoRA, Whisper's tokens: no --vocab)."
    ),
    encoder_input: str = typer.Option(
        None, help="seq2seq: 30s (Whisper's padded window, its zero-shot text) or true-length (faster)."
    ),
    train: str = typer.Option(
        None,
        "--train",
        help="Training manifest (JSONL), or a folder of shards (`hlora prepare shards`), streamed: give --max-steps.",
    ),
    dev: str = typer.Option(None, help="Dev manifest for validation."),
    vocab: str = typer.Option(None, help="vocab.json from `hlora prepare vocab`."),
    languages: str = typer.Option(None, help="Comma-separated languages (default: all in the vocab)."),
    lora_rank: int = typer.Option(None),
    lora_alpha: float = typer.Option(None),
    lora_dropout: float = typer.Option(None),
    lora_targets: str = typer.Option(None, help="Comma-separated subset of q,k,v,out,ff_in,ff_out."),
    lid_weight: float = typer.Option(None, help="Weight of the LID cross-entropy."),
    lid_head: str = typer.Option(None, help="pooled (norm, pooling, MLP) or frame (per-frame softmax, averaged)."),
    lid_pooling: str = typer.Option(None, help="pooled LID head: mean or attentive."),
    train_routing: str = typer.Option(
        None, help="hlora: oracle (true language), predicted (LID argmax) or soft (LoRA and CTC weighted by LID)."
    ),
    predicted_route_prob: float = typer.Option(
        None, help="hlora, oracle routing: share of batches routed by the predicted language."
    ),
    lr: float = typer.Option(None, help="Learning rate of the LoRA adapters."),
    head_lr: float = typer.Option(None, help="Learning rate of the CTC and LID heads (default: --lr)."),
    head_tie_steps: int = typer.Option(
        None,
        help="lidlora, hlora: the first N steps, every language's CTC head shares one row per symbol (letters "
        "learnt from all the audio; off CTC's blank plateau sooner), then each head trains alone.",
    ),
    warmup_steps: int = typer.Option(None),
    schedule: str = typer.Option(None, help="linear, cosine or constant after warmup."),
    max_steps: int = typer.Option(None),
    epochs: float = typer.Option(None),
    batch_seconds: float = typer.Option(None, help="Padded audio seconds per batch."),
    batching: str = typer.Option(
        None, help="sorted (default: by duration, least padding) or mixed (languages spread through every batch)."
    ),
    grad_accum: int = typer.Option(
        None, help="Batches per optimizer step; the gradient is that of the mean over all their utterances."
    ),
    max_duration: float = typer.Option(None, help="Skip longer utterances (counted)."),
    eval_every: int = typer.Option(None),
    save_every: int = typer.Option(None),
    metric: str = typer.Option(None, help="Keep best by cer, loss or lid_acc."),
    early_stop: int = typer.Option(None, help="Stop after this many evaluations without improvement."),
    seed: int = typer.Option(None),
    num_workers: int = typer.Option(
        None,
        help="Processes featurising audio ahead of training (default: 0 on 1-2 cores, else cores/4, at most 4).",
    ),
    device: str = typer.Option(None, help="auto, cpu, cuda or cuda:N."),
    dtype: str = typer.Option(
        None, help="auto (bf16 where the GPU or CPU computes it natively, else fp32), fp32, or bf16."
    ),
    deterministic: bool = typer.Option(None, "--deterministic/--no-deterministic"),
    compile: bool = typer.Option(
        None,
        "--compile/--no-compile",
        help="torch.compile the training step's forward and backward (CUDA graphs; symbolic shapes): "
        "for GPUs, where launches dominate a small model's step; refused on a CPU (BENCHMARKS.md says why).",
    ),
    tensorboard: bool = typer.Option(
        None,
        "--tensorboard/--no-tensorboard",
        help="Metrics as TensorBoard events in RUN_DIR/tensorboard (default: where tensorboard is installed).",
    ),
    resume: bool = typer.Option(False, "--resume", help="Continue the run in RUN_DIR from its checkpoint."),
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace a run already in RUN_DIR."),
) -> None:
    """Train a model; RUN_DIR/best and RUN_DIR/last are model directories every other command reads.
    Multi-GPU / multi-node: `torchrun --nproc_per_node N -m hlora_cli train ...`."""
    run_training(dict(locals()))


# `hlora fuse` / `hlora distill` take train's flags but these (the experts bring them).
_FROM_EXPERTS_DROP = {
    *("model_type", "k", "freeze_layers", "backbone", "vocab", "languages"),
    *("backbone_mode", "encoder_input"),
}
_TRAIN_PARAMS = inspect.signature(train, eval_str=True).parameters


def _experts_argument() -> inspect.Parameter:
    arg = typer.Argument(
        ...,
        metavar="EXPERT_DIR...",
        help="Expert model directories (`hlora train --model-type expert`), one per language.",
    )
    return inspect.Parameter("experts", inspect.Parameter.POSITIONAL_OR_KEYWORD, default=arg, annotation=list[Path])


def _option(name: str, annotation: type, option: typer.models.OptionInfo) -> inspect.Parameter:
    return inspect.Parameter(name, inspect.Parameter.KEYWORD_ONLY, default=option, annotation=annotation)


def _from_experts(model_type: str, doc: str, extra: list[inspect.Parameter], drop: set[str]) -> Callable[..., None]:
    """A command on `train`'s flags (less `drop`, plus `extra`) that trains a `model_type` model
    built from the experts named as arguments."""

    def command(**flags) -> None:
        flags["experts"] = [str(e) for e in flags["experts"]]
        run_training({**flags, "model_type": model_type})

    params = [_experts_argument(), *extra]
    params += [p.replace(kind=inspect.Parameter.KEYWORD_ONLY) for n, p in _TRAIN_PARAMS.items() if n not in drop]
    command.__signature__ = inspect.Signature(params)
    command.__doc__ = doc
    return command


fuse = _from_experts(
    "mole",
    """Fuse LoRA language experts into a MoLE model: layers 1..L1 mix every expert with learned
    weights, a router (LID head) on layer L1 picks each utterance's expert for the deeper layers.
    The experts stay frozen: only fusion weights and router train. Decode it single (router),
    oracle or two-stage like HLoRA.""",
    [
        _option("l1", int, typer.Option(None, "--l1", help="Fused lower layers, 1..N-1; the router reads layer L1.")),
        _option(
            "init_from",
            str,
            typer.Option(
                None,
                help="A mole model to warm-start fusion weights and router from (adding a language: "
                "its experts plus the new one).",
            ),
        ),
    ],
    _FROM_EXPERTS_DROP
    | {"train_routing", "predicted_route_prob", "lora_rank", "lora_alpha", "lora_dropout"}
    | {"lora_targets", "gradient_checkpointing"},
)
distill = _from_experts(
    "student",
    """Distil LoRA language experts into one multilingual student LoRA (rank 256 unless given,
    started from the experts' average) with one shared inventory and head: CTC + cosine distance
    of every layer's output to the utterance's expert + Jensen-Shannon of their CTC posteriors.
    It decodes with no language given and no router.""",
    [
        _option("kd", str, typer.Option(None, "--kd", help="layerwise (cosine per layer + JS), logits (JS) or none.")),
        _option("kd_cos_weight", float, typer.Option(None, help="Weight of the layer-wise cosine distance.")),
        _option("kd_js_weight", float, typer.Option(None, help="Weight of the Jensen-Shannon term.")),
    ],
    _FROM_EXPERTS_DROP | {"train_routing", "predicted_route_prob", "lora_targets"},
)


def run_training(options: dict) -> None:
    """Train with the flags as given (each, but out/config/resume/overwrite, a TrainConfig field)."""
    out, config, resume, overwrite = (options.pop(k) for k in ("out", "config", "resume", "overwrite"))
    overrides = flag_overrides(options)
    base = out / "train.yaml" if resume and config is None else config
    if resume and config is None and not (out / "train.yaml").exists():
        raise HloraError(f"{out}: nothing to resume (no run was saved there: no train.yaml)")
    cfg = load_config(base, overrides)
    trainer = Trainer(cfg, out, resume=resume, overwrite=overwrite)
    console = Console(quiet=not trainer.dist.is_main)
    trainable, frozen = trainer.model.parameter_counts()
    model = trainer.model
    console.print(
        f"[bold]{cfg.model_type}[/] on {model.config.backbone.source} ({model.backbone.num_layers} layers: "
        f"{trainer.model.layout.describe()}), languages {', '.join(trainer.model.languages)}; "
        f"{len(trainer.train_data.examples)} training utterances, {trainable:,} trainable / {frozen:,} frozen "
        f"parameters; {trainer.dist.world_size} process(es) on {trainer.device}, "
        f"{trainer.workers} data worker(s) each" + (f"; resuming at step {trainer.step}" if resume else "")
    )
    every = float(os.environ.get("HLORA_PROGRESS_SECONDS", "30"))  # plain progress lines in log files
    with TrainProgress(console, trainer.total_steps, trainer.step, trainer.dist.is_main, every) as progress:
        summary = trainer.fit(progress.on_step, progress.on_eval)
    trainer.dist.close()
    print_summary(console, summary, out)
