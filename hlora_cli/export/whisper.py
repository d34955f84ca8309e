"""`hlora export hf` of a seq2seq model: one language as a plain transformers Whisper.

Every LoRA that language runs (encoder and decoder: shared, its routed LoRA, a MoLE's fused layers
with their learned weights) is folded into the weights of a WhisperForConditionalGeneration, saved
with its processor (tokenizer and feature extractor) and a generation config that forces the
language (given, or the model's only one; a model with nothing routed exported without --lang keeps
Whisper's language detection) and the task. `generate(input_features)` then writes the greedy text
of `hlora decode --mode oracle --lang LANG`, and `pipeline("automatic-speech-recognition", model=OUT)`
(5 beams) that of `--decoder beam`, without Whisper's language detection; CTranslate2's converter
(faster-whisper) takes the directory as it is.

transformers' Whisper encoder reads 30 s windows only, so the export is of a model trained on
`--encoder-input 30s`; a true-length model is refused unless the user accepts that its export
runs on input it was not trained on (`--allow-30s-input`)."""

from __future__ import annotations

from pathlib import Path

from hlora_cli.errors import HloraError
from hlora_cli.export.common import export_language
from hlora_cli.model import HloraModel, ModelConfig


def check_whisper_exportable(config: ModelConfig, allow_30s_input: bool) -> None:
    """Before loading: a seq2seq model whose export decodes the input it was trained on."""
    if not config.seq2seq:
        raise HloraError("a Whisper export takes a seq2seq model")
    if config.encoder_input != "30s" and not allow_30s_input:
        raise HloraError(
            f"this model was trained on --encoder-input {config.encoder_input}, and transformers' Whisper reads "
            "30 s windows only: its export would decode input it was not trained on. Export a model trained with "
            "--encoder-input 30s, or pass --allow-30s-input (measure its error rate first)"
        )


def export_whisper(model: HloraModel, lang: str | None, out: Path, allow_30s_input: bool = False) -> str:
    """Write the folded Whisper, its processor and generation config for `lang` into `out` (a new
    directory); returns the language forced, or "language detected"."""
    from transformers import WhisperProcessor

    check_whisper_exportable(model.config, allow_30s_input)
    idx = export_language(model, lang)  # a routed model needs --lang
    # Without --lang, a model with nothing routed (shared LoRA, student) keeps Whisper's language
    # detection: its LID head has no place in a transformers Whisper.
    forced = model.languages[idx] if lang is not None or len(model.languages) == 1 else None
    generator = model.folded_backbone(idx).generator
    gen = generator.generation_config
    # Plain transcription, in the forced language at every call (timestamps stay transformers'
    # default: off up to 30 s, on for its long-form decoding).
    gen.language, gen.task = forced, "transcribe"
    generator.save_pretrained(out)
    bb = model.backbone
    WhisperProcessor(feature_extractor=bb.feature_extractor, tokenizer=bb.tokenizer).save_pretrained(out)
    return forced or "language detected"
