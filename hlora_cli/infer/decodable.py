"""What the Recognizer reads of a model, declared: the torch model core (model/hlora.py) and an
ONNX export (infer/onnx_model.py) are both one, so decoding needs no duck typing."""

from __future__ import annotations

from typing import Any, Protocol, runtime_checkable

import torch

from hlora_cli.data.features import Features
from hlora_cli.model.config import ModelConfig
from hlora_cli.model.output import ModelOutput


@runtime_checkable
class DecodableModel(Protocol):
    config: ModelConfig
    backbone: Any  # max_seconds, frames_per_second, frontend: what reading the audio needs

    @property
    def languages(self) -> list[str]: ...

    @property
    def shared_head(self) -> bool: ...

    @property
    def one_language(self) -> bool: ...

    @property
    def has_lid(self) -> bool: ...

    def vocab(self, lang: int) -> list[str]:
        """The token inventory of head `lang`."""
        ...

    def lang_index(self, codes: list[str]) -> torch.Tensor: ...

    def __call__(self, feats: Features, routing_mode: str, langs: torch.Tensor | None = None) -> ModelOutput: ...

    def identify(self, feats: Features) -> torch.Tensor:
        """LID log-posteriors, shape = (batch, n_languages)."""
        ...
