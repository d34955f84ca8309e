"""The training configuration: defaults < --config YAML < command-line flags. The resolved config
is written to RUN_DIR/train.yaml."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

import yaml

from hlora_cli.data.batching import BATCHINGS
from hlora_cli.errors import HloraError
from hlora_cli.model.config import FROM_EXPERTS, LID_HEADS, LORA_TARGETS, canonical_model_type
from hlora_cli.values import check_number

TRAIN_ROUTINGS = ("oracle", "predicted", "soft")
KD_MODES = ("layerwise", "logits", "none")
# LoRA rank when none is given: the experts paper's 64 for an expert, 256 for its student.
DEFAULT_RANKS = {"expert": 64, "student": 256}


@dataclass
class TrainConfig:
    # data
    train: str = ""
    dev: str | None = None
    vocab: str = ""
    languages: list[str] | None = None  # default: every language of the vocab
    max_duration: float = 30.0  # longer utterances are skipped (and counted)
    # model
    model_type: str = "hlora"  # ctc, shared-lora (alias: baseline), lidlora, hlora, expert, mole or student
    backbone: str = ""  # local directory or hub id
    # ctc: CTC heads on the encoder; seq2seq: Whisper's own decoder (LoRA in it too), trained with
    # its cross-entropy on Whisper's tokens (no --vocab); encoder_input "30s" or "true-length"
    backbone_mode: str = "ctc"
    encoder_input: str = "30s"
    k: int | None = None  # hlora: shared lower layers (1..k shared LoRA, LID after k, k+1..N per language)
    freeze_layers: int = 0  # ctc: the lowest N transformer layers stay frozen as well as the conv frontend
    gradient_checkpointing: bool = False  # recompute layer activations in backward: less memory, ~1.3x time
    lora_rank: int | None = None  # default 8; expert 64, student 256
    lora_alpha: float = 16.0
    lora_dropout: float = 0.05
    lora_targets: list[str] = field(default_factory=lambda: list(LORA_TARGETS))
    lid_head: str = "pooled"  # pooled (norm, pooling, MLP) or frame (per-frame softmax, averaged)
    lid_pooling: str = "mean"
    lid_hidden: int = 256
    # models built from LoRA language experts (`hlora fuse`: mole, `hlora distill`: student)
    experts: list[str] | None = None  # expert model directories, one language each
    l1: int | None = None  # mole: layers 1..l1 fuse the experts, the router reads layer l1
    init_from: str | None = None  # mole: warm start fusion weights and router from this mole model
    # objective
    lid_weight: float = 0.3
    # hlora: how the routed layers are chosen in training. oracle: the true language (with
    # predicted_route_prob of the batches by the LID's argmax); predicted: the LID's argmax;
    # soft: every language's LoRA weighted by the LID posterior, and CTC on every head likewise.
    train_routing: str = "oracle"
    predicted_route_prob: float = 0.0
    # student: knowledge distillation from each utterance's expert. layerwise: cosine distance of
    # every layer's output + Jensen-Shannon of the CTC posteriors; logits: JS only; none: CTC only.
    kd: str = "layerwise"
    kd_cos_weight: float = 1.0
    kd_js_weight: float = 1.0
    # optimisation
    lr: float = 1e-3  # LoRA adapters
    head_lr: float | None = None  # CTC and LID heads (new, randomly initialised); default: lr
    # lidlora/hlora: for the first N steps the languages' CTC heads share one row per symbol (a
    # letter, the blank), learnt from every language's audio; then each goes on alone from there
    head_tie_steps: int = 0
    weight_decay: float = 0.01
    warmup_steps: int = 100
    schedule: str = "linear"  # "linear" or "cosine" decay after warmup, or "constant"
    max_steps: int | None = None
    epochs: float | None = None
    batch_seconds: float = 120.0
    batching: str = "sorted"  # "sorted": by duration, least padding; "mixed": languages mixed in every batch
    grad_accum: int = 1
    clip: float = 1.0
    seed: int = 0
    # evaluation and checkpoints
    eval_every: int = 200
    save_every: int = 200
    metric: str = "cer"  # "cer", "loss" (lower is better) or "lid_acc" (higher)
    early_stop: int | None = None  # evaluations without improvement before stopping
    max_bad_batches: int = 20  # consecutive non-finite losses before aborting
    # data loading
    num_workers: int | None = None  # processes featurising audio; default 0 on 1-2 cores, else cores/4, at most 4
    # device
    device: str = "auto"  # auto, cpu, cuda, cuda:N
    bf16: bool = True  # with dtype "auto": bf16 where the device computes it natively (False: fp32 there too)
    dtype: str = "auto"  # autocast: auto (bf16 on CUDA and on CPUs with AVX512-BF16 or AMX, else fp32), fp32, bf16
    deterministic: bool = False
    # torch.compile the model's forward and backward (bucketed shapes; CUDA graphs on a GPU):
    # model/compiled.py. Dev evaluation stays eager.
    compile: bool = False
    # TensorBoard events in RUN_DIR/tensorboard: None = where the package is installed
    tensorboard: bool | None = None

    def check(self) -> None:
        if not self.train:
            raise HloraError("no training manifest: give --train (or train: in --config)")
        self.model_type = canonical_model_type(self.model_type)
        from_experts = self.model_type in FROM_EXPERTS
        if from_experts:
            self._check_from_experts()
        elif self.experts:
            raise HloraError(
                f"experts are given, but a {self.model_type} model is not built from experts: use mole or student"
            )
        self._check_seq2seq()
        if not self.vocab and not from_experts and self.backbone_mode != "seq2seq":
            raise HloraError("no vocabulary: give --vocab (made by `hlora prepare vocab`)")
        if not self.backbone and not from_experts:
            raise HloraError("no backbone: give --backbone (a local HF directory or hub id)")
        if self.lora_rank is None:
            self.lora_rank = DEFAULT_RANKS.get(self.model_type, 8)
        if self.model_type == "expert" and (self.languages is None or len(self.languages) != 1):
            raise HloraError("an expert is one language's model: give it with --languages (e.g. --languages de)")
        if self.model_type == "hlora" and self.k is None:
            raise HloraError("an hlora model needs --k: the number of shared lower layers (the paper: 9 of 12)")
        if self.train_routing not in TRAIN_ROUTINGS:
            raise HloraError(f"unknown --train-routing {self.train_routing}: choose {', '.join(TRAIN_ROUTINGS)}")
        if self.train_routing != "oracle" and self.model_type != "hlora":
            raise HloraError(
                f"--train-routing {self.train_routing} needs an hlora model (a LID head below routed layers)"
            )
        if self.head_tie_steps and (self.model_type not in ("lidlora", "hlora") or self.backbone_mode == "seq2seq"):
            raise HloraError(
                "--head-tie-steps ties per-language CTC heads: it applies to lidlora and hlora in ctc backbone mode"
            )
        if self.lid_head not in LID_HEADS:
            raise HloraError(f"unknown --lid-head {self.lid_head}: choose {' or '.join(LID_HEADS)}")
        if self.freeze_layers and self.model_type != "ctc":
            raise HloraError("--freeze-layers applies to the fully fine-tuned ctc model only")
        if self.max_steps is None and self.epochs is None:
            raise HloraError("give --max-steps or --epochs")
        if self.metric not in ("cer", "loss", "lid_acc"):
            raise HloraError(f"unknown --metric {self.metric}: choose cer, loss or lid_acc")
        if self.schedule not in ("linear", "cosine", "constant"):
            raise HloraError(f"unknown schedule {self.schedule}: choose linear, cosine or constant")
        if self.batching not in BATCHINGS:
            raise HloraError(f"unknown batching {self.batching}: choose mixed or sorted")
        if self.dtype not in ("auto", "fp32", "bf16"):
            raise HloraError(f"unknown --dtype {self.dtype}: choose auto, fp32 or bf16")
        if self.compile and self.gradient_checkpointing:
            # the recomputed layers run inside routing()'s per-layer state: not traced and tested
            raise HloraError("--compile with --gradient-checkpointing is not supported: choose one")
        if self.tensorboard:
            import importlib.util

            if importlib.util.find_spec("tensorboard") is None:
                raise HloraError("--tensorboard needs the tensorboard package: pip install tensorboard")
        if self.grad_accum < 1:
            raise HloraError("--grad-accum must be >= 1")
        self.check_numbers()

    def _check_seq2seq(self) -> None:
        from hlora_cli.model.config import BACKBONE_MODES, ENCODER_INPUTS

        if self.backbone_mode not in BACKBONE_MODES:
            raise HloraError(f"unknown --backbone-mode {self.backbone_mode}: choose {', '.join(BACKBONE_MODES)}")
        if self.encoder_input not in ENCODER_INPUTS:
            raise HloraError(f"unknown --encoder-input {self.encoder_input}: choose {', '.join(ENCODER_INPUTS)}")
        if self.backbone_mode != "seq2seq":
            if self.encoder_input != "30s":
                raise HloraError("--encoder-input applies to --backbone-mode seq2seq only")
            return
        if self.model_type in FROM_EXPERTS:
            raise HloraError("--backbone-mode is not taken by `hlora fuse`/`hlora distill`: the experts bring it")
        if self.model_type == "ctc":
            raise HloraError("--backbone-mode seq2seq needs a LoRA model type (shared-lora, lidlora, hlora, expert)")
        if self.vocab:
            raise HloraError("--backbone-mode seq2seq writes Whisper's own tokens: drop --vocab")
        if self.train_routing == "soft":
            raise HloraError("--train-routing soft is for CTC heads; a seq2seq model trains with oracle or predicted")

    def _check_from_experts(self) -> None:
        what = "hlora fuse" if self.model_type == "mole" else "hlora distill"
        if not self.experts or len(self.experts) < 2:
            raise HloraError(f"`{what}` needs two or more expert directories, got {len(self.experts or [])}")
        if self.model_type == "mole" and self.l1 is None:
            raise HloraError("a mole model needs --l1: the lower layers that fuse the experts (1..N-1)")
        if self.model_type != "mole" and (self.l1 is not None or self.init_from):
            raise HloraError("--l1 and --init-from apply to `hlora fuse` (a mole model) only")
        if self.kd not in KD_MODES:
            raise HloraError(f"unknown --kd {self.kd}: choose {', '.join(KD_MODES)}")
        for flag, value in (("--vocab", self.vocab), ("--backbone", self.backbone), ("--languages", self.languages)):
            if value:
                raise HloraError(f"{flag} is not taken by `{what}`: the experts bring their own")

    def check_numbers(self) -> None:
        """Every numeric setting in its range before any work (`--lr nan` once trained NaN models)."""
        inf = float("inf")
        checks = [
            ("--lr", self.lr, 0, inf, True, False, False),
            ("--head-lr", self.head_lr, 0, inf, True, False, True),
            ("--lora-dropout", self.lora_dropout, 0, 1, False, True, False),
            ("--lora-rank", self.lora_rank, 1, inf, False, False, False),
            ("--lora-alpha", self.lora_alpha, 0, inf, True, False, False),
            ("--lid-weight", self.lid_weight, 0, inf, False, False, False),
            ("--predicted-route-prob", self.predicted_route_prob, 0, 1, False, False, False),
            ("--weight-decay", self.weight_decay, 0, inf, False, False, False),
            ("--warmup-steps", self.warmup_steps, 0, inf, False, False, False),
            ("--head-tie-steps", self.head_tie_steps, 0, inf, False, False, False),
            ("--max-steps", self.max_steps, 1, inf, False, False, True),
            ("--epochs", self.epochs, 0, inf, True, False, True),
            ("--batch-seconds", self.batch_seconds, 0, inf, True, False, False),
            ("--max-duration", self.max_duration, 0, inf, True, False, False),
            ("--clip", self.clip, 0, inf, True, False, False),
            ("--eval-every", self.eval_every, 1, inf, False, False, False),
            ("--save-every", self.save_every, 1, inf, False, False, False),
            ("--early-stop", self.early_stop, 1, inf, False, False, True),
            ("--max-bad-batches", self.max_bad_batches, 1, inf, False, False, False),
            ("--freeze-layers", self.freeze_layers, 0, inf, False, False, False),
            ("--lid-hidden", self.lid_hidden, 1, inf, False, False, False),
            ("--num-workers", self.num_workers, 0, inf, False, False, True),
            ("--l1", self.l1, 1, inf, False, False, True),
            ("--kd-cos-weight", self.kd_cos_weight, 0, inf, False, False, False),
            ("--kd-js-weight", self.kd_js_weight, 0, inf, False, False, False),
            ("--seed", self.seed, 0, 2**32 - 1, False, False, False),  # numpy's seed range
        ]
        for flag, value, low, high, open_low, open_high, optional in checks:
            check_number(flag, value, low, high, open_low=open_low, open_high=open_high, optional=optional)

    def save(self, path: Path) -> None:
        from hlora_cli.files import atomic_write

        text = yaml.safe_dump(asdict(self), sort_keys=False, allow_unicode=True)
        atomic_write(path, lambda p: p.write_text(text, encoding="utf-8"))


def flag_overrides(flags: dict[str, Any]) -> dict[str, Any]:
    """`hlora train`'s flags (named as the TrainConfig fields) as config values: comma-separated
    lists split (languages checked as codes), flags not given (None) left out. A flag that names no
    setting is a programming error, caught by the tests."""
    from hlora_cli.data.langs import language_list

    known = {f.name: f.type for f in fields(TrainConfig)}
    unknown = sorted(set(flags) - set(known))
    if unknown:
        raise TypeError(f"hlora train flags without a TrainConfig field: {', '.join(unknown)}")
    values = {}
    for name, value in flags.items():
        if value is None:
            continue
        if name == "languages":
            value = language_list(value)
        elif isinstance(value, (list, tuple)):
            value = [str(x) for x in value]
        elif known[name].startswith("list[str]"):
            value = [x.strip() for x in value.split(",") if x.strip()]
        values[name] = value
    return values


def load_config(path: Path | None, overrides: dict[str, Any]) -> TrainConfig:
    """Defaults, then the YAML file, then the flags that were given (not None)."""
    values: dict[str, Any] = {}
    if path is not None:
        try:
            loaded = yaml.safe_load(Path(path).read_text(encoding="utf-8")) or {}
        except FileNotFoundError as e:
            raise HloraError(f"{path}: config file not found") from e
        except IsADirectoryError as e:
            raise HloraError(f"{path}: is a directory, expected a YAML file") from e
        except UnicodeDecodeError as e:
            raise HloraError(f"{path}: not UTF-8 text (byte 0x{e.object[e.start]:02x} at offset {e.start})") from e
        except yaml.YAMLError as e:  # one line: where and what, as an editor would show it
            mark = getattr(e, "problem_mark", None)
            where = f":{mark.line + 1}:{mark.column + 1}" if mark is not None else ""
            what = " ".join(str(getattr(e, "problem", None) or e).split())
            raise HloraError(f"{path}{where}: not valid YAML ({what})") from e
        if not isinstance(loaded, dict):
            raise HloraError(f"{path}: expected a mapping of settings")
        known = {f.name for f in fields(TrainConfig)}
        unknown = sorted(set(loaded) - known)
        if unknown:
            raise HloraError(f"{path}: unknown setting(s) {', '.join(unknown)}")
        values.update({k: _coerce(path, k, v) for k, v in loaded.items()})
    values.update({k: v for k, v in overrides.items() if v is not None})
    return TrainConfig(**values)


_TYPES = {f.name: f.type for f in fields(TrainConfig)}


def _coerce(path: Path, key: str, value: Any) -> Any:
    """A YAML value checked against its setting's type, as the CLI checks a flag: YAML 1.1 reads
    `1e-3` (no dot) as a string, taken as the number it is meant to be; `true` is no number, 2.7 no
    step count, 'no' no boolean, 5 no list of languages."""
    kind = _TYPES[key]
    optional = kind.endswith("| None")
    kind = kind.removesuffix(" | None")
    if value is None:
        if optional:
            return None
        raise HloraError(f"{path}: setting {key} needs a value")
    if kind in ("int", "float"):
        if isinstance(value, bool):
            raise HloraError(f"{path}: setting {key} must be a number, got {value!r}")
        if isinstance(value, str):
            try:
                value = float(value)
            except ValueError:
                raise HloraError(f"{path}: setting {key} must be a number, got {value!r}") from None
        if not isinstance(value, (int, float)):
            raise HloraError(f"{path}: setting {key} must be a number, got {value!r}")
        if kind == "float":
            return float(value)
        if isinstance(value, float) and not value.is_integer():
            raise HloraError(f"{path}: setting {key} must be a whole number, got {value!r}")
        return int(value)
    if kind == "bool":
        if not isinstance(value, bool):
            raise HloraError(f"{path}: setting {key} must be true or false, got {value!r}")
        return value
    if kind == "str":
        if not isinstance(value, str):
            raise HloraError(f"{path}: setting {key} must be a string, got {value!r}")
        return value
    if kind == "list[str]":
        if isinstance(value, str):
            return [x.strip() for x in value.split(",") if x.strip()]
        if not isinstance(value, list) or not all(isinstance(x, str) for x in value):
            raise HloraError(
                f"{path}: setting {key} must be a list of strings (or one comma-separated string), got {value!r}"
            )
        return value
    return value
