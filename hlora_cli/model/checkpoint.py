"""A model directory: config.json (everything needed to rebuild the model, including the backbone
reference and its weight fingerprint, and the layer layout) + the trained parameters only:
adapters.safetensors for the LoRA types (LoRA, LID and CTC heads), finetuned.safetensors for the
fully fine-tuned ctc type (every trained encoder layer and the head: most of the encoder's size).
Both are written atomically, so a crash never leaves a half-written model behind."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import torch
from safetensors.torch import load as load_safetensors
from safetensors.torch import load_file, save_file

from hlora_cli.errors import HloraError
from hlora_cli.files import atomic_write, json_text
from hlora_cli.model.backbone import load_backbone
from hlora_cli.model.config import BackboneRef, ModelConfig
from hlora_cli.model.hlora import HloraModel

CONFIG = "config.json"
ADAPTERS = "adapters.safetensors"
FINETUNED = "finetuned.safetensors"


def weights_file(config: ModelConfig) -> str:
    return FINETUNED if config.model_type == "ctc" else ADAPTERS


def build_model(config: ModelConfig) -> HloraModel:
    """A fresh model (new adapters) on the backbone the config references; fills in its fingerprint."""
    backbone = load_backbone(config.backbone, config.encoder_input if config.seq2seq else None)
    config.backbone.fingerprint = backbone.fingerprint
    return HloraModel(config, backbone)


def save_model(model: HloraModel, out_dir: str | Path) -> Path:
    out = Path(out_dir)
    if model.is_merged:
        raise HloraError("save the model unmerged: merged weights would be saved twice")
    tensors = {n: t.contiguous().cpu() for n, t in model.saved_state_dict().items()}
    atomic_write(out / weights_file(model.config), lambda p: save_file(tensors, str(p)))
    text = json_text(model.config.to_dict(), indent=2) + "\n"
    atomic_write(out / CONFIG, lambda p: p.write_text(text, encoding="utf-8"))
    return out


def check_model_dir(path: Path) -> Path:
    """A model directory as commands take it, checked before any work."""
    if not Path(path).is_dir():
        raise HloraError(f"{path}: not a model directory (RUN_DIR/best holds config.json and the weights)")
    return Path(path)


def read_config(model_dir: str | Path) -> ModelConfig:
    path = Path(model_dir) / CONFIG
    try:
        return _config(path.read_text(encoding="utf-8"), path)
    except FileNotFoundError as e:
        raise HloraError(f"{path}: no such file; is {model_dir} a model directory?") from e


def _config(text: str, path: Path) -> ModelConfig:
    try:
        return ModelConfig.from_dict(json.loads(text))
    except (json.JSONDecodeError, TypeError, KeyError, ValueError, AttributeError, HloraError) as e:
        raise HloraError(f"{path}: not a valid hlora model config ({e})") from e


# A model directory written before the CTC heads became the model's readout (model/readout.py)
# names them ctc_heads.heads.N; they load under today's name.
OLD_HEADS, HEADS = "ctc_heads.", "readout."


def current_names(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    return {HEADS + n[len(OLD_HEADS) :] if n.startswith(OLD_HEADS) else n: t for n, t in state.items()}


def read_weights(path: Path) -> dict[str, torch.Tensor]:
    """A model directory's weights file, as tensors by parameter name."""
    try:
        return current_names(load_file(str(path)))
    except FileNotFoundError as e:
        raise HloraError(f"{path}: no such file; the model directory is incomplete") from e
    except Exception as e:  # safetensors' own error type: a file cut short, or not safetensors at all
        raise HloraError(f"{path}: not a readable safetensors file (cut short or corrupt: {e})") from e


def _weights(data: bytes, path: Path) -> dict[str, torch.Tensor]:
    try:
        return current_names(load_safetensors(data))
    except Exception as e:  # as read_weights
        raise HloraError(f"{path}: not a readable safetensors file (cut short or corrupt: {e})") from e


def _being_replaced(model_dir: Path) -> bool:
    """A training is swapping a new model into `model_dir` (train/state.save_model_dir: NAME.tmp is
    written, NAME is renamed to NAME.old, NAME.tmp to NAME, NAME.old removed)."""
    return any(model_dir.with_name(model_dir.name + s).exists() for s in (".tmp", ".old"))


def read_model_dir(model_dir: Path, tries: int = 80) -> tuple[ModelConfig, dict[str, torch.Tensor]]:
    """Config and weights read from one and the same directory: through a descriptor of the
    directory, so a training that swaps a new `best/` in meanwhile gives the old model or the new
    one, never a mix or a missing file (a read that loses the race tries again, for up to 2 s)."""
    if os.open in os.supports_dir_fd:
        for _ in range(tries):
            try:
                fd = os.open(model_dir, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
            except OSError:
                fd = None
            if fd is not None:
                try:
                    config = _config(_read_at(fd, CONFIG).decode("utf-8"), model_dir / CONFIG)
                    name = weights_file(config)
                    return config, _weights(_read_at(fd, name), model_dir / name)
                except FileNotFoundError:
                    pass
                finally:
                    os.close(fd)
            if not _being_replaced(model_dir):
                break
            time.sleep(0.025)
    config = read_config(model_dir)  # not being replaced: the plain reads say what is wrong
    return config, read_weights(model_dir / weights_file(config))


def _read_at(dir_fd: int, name: str) -> bytes:
    fd = os.open(name, os.O_RDONLY, dir_fd=dir_fd)
    with os.fdopen(fd, "rb") as f:
        return f.read()


def load_model(model_dir: str | Path, backbone: str | None = None) -> HloraModel:
    """Rebuild a saved model in eval mode. `backbone` overrides where the encoder is loaded from
    (a moved directory); its weights must still match the saved fingerprint."""
    model_dir = Path(model_dir)
    config, state = read_model_dir(model_dir)
    ref = config.backbone
    if backbone is not None:
        ref = BackboneRef(ref.kind, backbone, None, ref.seed, ref.fingerprint, ref.tokenizer)
    bb = load_backbone(ref, config.encoder_input if config.seq2seq else None)
    if ref.fingerprint and bb.fingerprint != ref.fingerprint:
        where = ref.source or f"random {ref.kind} config (seed {ref.seed})"
        raise HloraError(
            f"backbone {where} has fingerprint {bb.fingerprint}, but {model_dir} was trained on "
            f"{config.backbone.source or 'a random config'} with fingerprint {ref.fingerprint}: "
            "load the backbone it was trained on"
        )
    model = HloraModel(config, bb)
    path = model_dir / weights_file(config)
    expected = set(model.saved_state_dict())
    if set(state) != expected:
        missing, extra = sorted(expected - set(state)), sorted(set(state) - expected)
        raise HloraError(f"{path}: weights do not match the config (missing {missing[:3]}, unexpected {extra[:3]})")
    finite = (n for n, t in state.items() if t.is_floating_point() and not torch.isfinite(t).all())
    broken = next(finite, None)
    if broken is not None:  # it would decode every utterance to an empty text
        raise HloraError(
            f"{path}: {broken} holds NaN or infinite values; the training diverged: retrain, e.g. with a lower --lr"
        )
    with torch.no_grad():
        params = dict(model.named_parameters())
        for name, t in state.items():
            if params[name].shape != t.shape:
                raise HloraError(
                    f"{path}: {name} has shape {tuple(t.shape)}, the config says {tuple(params[name].shape)}"
                )
            params[name].copy_(t)
    return model.eval()
