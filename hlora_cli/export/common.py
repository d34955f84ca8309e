"""What every export needs: the language a routed model is exported for."""

from __future__ import annotations

from hlora_cli.errors import HloraError
from hlora_cli.model import HloraModel


def export_language(model: HloraModel, lang: str | None) -> int:
    """The index of `lang` in the model, or 0 where the model has one language or one shared head
    and no routed layer (then nothing depends on the language)."""
    routed = bool(model.layout.routed or model.layout.fused)
    if lang is None:
        if routed and len(model.languages) > 1:
            raise HloraError(
                f"a {model.config.model_type} model has per-language LoRA and heads: choose one with --lang "
                f"({', '.join(model.languages)})"
            )
        return 0
    return int(model.lang_index([lang])[0])
