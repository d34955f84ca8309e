"""`hlora export hf`: one language of a HuBERT / wav2vec2 model as a plain transformers CTC model.

The shared LoRA and that language's LoRA are folded into the encoder's weights, its CTC head
becomes `lm_head`, and a processor (Wav2Vec2CTCTokenizer over the head's inventory, with the blank
as pad token and `|` as word delimiter, and the feature extractor with the backbone's own waveform
normalisation) is saved beside it: `pipeline("automatic-speech-recognition", model=OUT)` then
transcribes with the same greedy text as `hlora decode --mode oracle --lang LANG`, except that the
transformers tokenizer keeps `<unk>` as text (hlora drops it) and a run of `|` as that many spaces."""

from __future__ import annotations

import json
from pathlib import Path

import torch

from hlora_cli.data.vocab import BLANK, UNK, WORD
from hlora_cli.errors import HloraError
from hlora_cli.export.common import export_language
from hlora_cli.model import HloraModel

CTC_CLASSES = {"hubert": "HubertForCTC", "wav2vec2": "Wav2Vec2ForCTC"}


def check_hf_exportable(model: HloraModel) -> None:
    kind = model.backbone.kind
    if kind not in CTC_CLASSES:
        raise HloraError(
            f"a {kind}-encoder CTC model has no transformers CTC class to export to: use `hlora export onnx` "
            "(or `hlora export peft` for the adapters alone)"
        )
    if model.readout.tells_language:
        raise HloraError(
            "a ctc model writes a language-prefix token (<de>) that the transformers tokenizer would keep in the "
            "text: export a shared-lora, hlora or expert model, or the ctc model with `hlora export onnx`"
        )
    if model.config.bpe_models:
        raise HloraError("a BPE model cannot be exported as a character CTC tokenizer: export a character model")


def export_hf(model: HloraModel, lang: str | None, out: Path) -> str:
    """Write the transformers model and processor for `lang` into `out` (a new directory); returns
    the language exported."""
    import transformers

    check_hf_exportable(model)
    idx = export_language(model, lang)
    vocab = model.vocab(idx)
    encoder = model.backbone.module
    head = model.readout.heads[0 if model.shared_head else idx]
    config = type(encoder.config).from_dict(encoder.config.to_dict())
    config.vocab_size, config.pad_token_id = len(vocab), vocab.index(BLANK)
    config.architectures = [CTC_CLASSES[model.backbone.kind]]
    hf = getattr(transformers, CTC_CLASSES[model.backbone.kind])(config)
    inner = getattr(hf, model.backbone.kind)
    missing, unexpected = inner.load_state_dict(model.folded_backbone(idx).module.state_dict(), strict=False)
    if missing or unexpected:  # the same transformers class on both sides: nothing may differ
        raise HloraError(f"the folded encoder does not fit {type(inner).__name__} ({missing[:2]}, {unexpected[:2]})")
    with torch.no_grad():
        hf.lm_head.weight.copy_(head.weight)
        hf.lm_head.bias.copy_(head.bias)
    hf.save_pretrained(out)
    (out / "vocab.json").write_text(json.dumps({t: i for i, t in enumerate(vocab)}, ensure_ascii=False))
    tokenizer = transformers.Wav2Vec2CTCTokenizer(
        str(out / "vocab.json"),
        unk_token=UNK,
        pad_token=BLANK,
        word_delimiter_token=WORD,
        bos_token=None,
        eos_token=None,
        do_lower_case=False,
        clean_up_tokenization_spaces=False,
    )
    features = transformers.Wav2Vec2FeatureExtractor(
        feature_size=1,
        sampling_rate=16000,
        padding_value=0.0,
        do_normalize=model.backbone.do_normalize,
        # group-norm frontends normalise over time: batches must not be padded, as in hlora
        return_attention_mask=not model.backbone.per_utterance_frontend,
    )
    transformers.Wav2Vec2Processor(feature_extractor=features, tokenizer=tokenizer).save_pretrained(out)
    return model.languages[idx]
