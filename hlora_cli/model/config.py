"""Dataclass configs of a model: written to config.json beside the adapters, so a model directory
rebuilds itself with no other flag."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

MODEL_TYPES = ("baseline", "lidlora", "hlora")
# LoRA targets by the names used in the papers; each backbone maps them to its own module paths.
LORA_TARGETS = ("q", "k", "v", "out", "ff_in", "ff_out")
BLANK = "<blank>"


@dataclass
class LoRAConfig:
    rank: int = 8
    alpha: float = 16.0
    dropout: float = 0.0
    targets: list[str] = field(default_factory=lambda: list(LORA_TARGETS))


@dataclass
class LIDConfig:
    pooling: str = "mean"  # "mean" or "attentive" (attentive statistics pooling)
    hidden: int = 256


@dataclass
class BackboneRef:
    """Where the frozen encoder comes from: a local directory or hub id (`source`), or, for tests,
    a transformers config dict built with random weights from `seed`."""

    kind: str  # "whisper", "hubert" or "wav2vec2"
    source: str | None = None
    config: dict[str, Any] | None = None
    seed: int = 0
    fingerprint: str = ""


@dataclass
class ModelConfig:
    model_type: str
    backbone: BackboneRef
    languages: list[str]
    # Per-language token inventories (blank first) for lidlora/hlora; the baseline uses shared_vocab.
    vocabs: dict[str, list[str]] = field(default_factory=dict)
    shared_vocab: list[str] = field(default_factory=list)
    k: int | None = None  # hlora only: number of top layers with routed LoRA
    lora: LoRAConfig = field(default_factory=LoRAConfig)
    lid: LIDConfig = field(default_factory=LIDConfig)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> ModelConfig:
        d = dict(d)
        d["backbone"] = BackboneRef(**d["backbone"])
        d["lora"] = LoRAConfig(**d.get("lora", {}))
        d["lid"] = LIDConfig(**d.get("lid", {}))
        return cls(**d)
