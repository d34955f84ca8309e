"""The model core: frozen backbone + shared/routed LoRA + LID head, read out by CTC heads or
Whisper's decoder (model/readout.py), one forward."""

from hlora_cli.model.backbone import Backbone, Features, load_backbone
from hlora_cli.model.checkpoint import build_model, load_model, read_config, save_model
from hlora_cli.model.config import BackboneRef, LIDConfig, LoRAConfig, ModelConfig
from hlora_cli.model.hlora import HloraModel
from hlora_cli.model.output import ModelOutput

__all__ = [
    "Backbone",
    "BackboneRef",
    "Features",
    "HloraModel",
    "LIDConfig",
    "LoRAConfig",
    "ModelConfig",
    "ModelOutput",
    "build_model",
    "load_backbone",
    "load_model",
    "read_config",
    "save_model",
]
