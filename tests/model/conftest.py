"""Helpers and fixtures shared by the tests of this folder."""

from __future__ import annotations

from hlora_cli.model import BackboneRef, ModelConfig
from hlora_cli.model.whisper_decoder import generate
from tests.conftest import TINY

LANGS = ["de", "fr", "en"]  # the seq2seq tests' languages
TINY_S2S = {**TINY["whisper"], "decoder_layers": 2, "encoder_layers": 2, "max_target_positions": 64}


def s2s_config(tokenizer, model_type: str = "hlora", encoder_input: str = "30s", **kw) -> ModelConfig:
    return ModelConfig(
        model_type,
        BackboneRef("whisper", config=TINY_S2S, tokenizer=str(tokenizer)),
        list(LANGS) if model_type != "expert" else ["de"],
        k=1 if model_type == "hlora" else None,
        backbone_mode="seq2seq",
        encoder_input=encoder_input,
        **kw,
    )


def decode(model, wavs, langs, routing="oracle", **kw) -> list[list[int]]:
    feats = model.prepare(wavs)
    out = model(feats, routing, model.lang_index(langs) if routing == "oracle" else None)
    return generate(model, out, max_new_tokens=12, **kw)
