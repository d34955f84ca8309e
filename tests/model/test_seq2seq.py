"""seq2seq (Whisper's own decoder with LoRA): forced language equals transformers' generate on the
unmodified model when every LoRA is zero, routing per utterance survives sorting and beam search,
true-length input is masked in cross-attention, and a model directory reloads identically."""

from __future__ import annotations

import pytest
import torch
from transformers import WhisperForConditionalGeneration

from hlora_cli.errors import HloraError
from hlora_cli.model import BackboneRef, ModelConfig, build_model, load_model, save_model
from hlora_cli.model.backbone import _hf_config
from hlora_cli.model.whisper_decoder import IGNORE, teacher_forcing
from tests.conftest import TINY, randomize_adapters, waves
from tests.model.conftest import LANGS, decode, s2s_config


def test_layout_puts_lora_in_the_decoder(whisper_base):
    model = build_model(s2s_config(whisper_base))
    described = "layer 1 shared LoRA, LID after layer 1, layer 2 per language, decoder per language"
    assert model.layout.describe() == described
    # 2 decoder layers x (4 self-attention + 4 cross-attention + 2 feed-forward) targets
    assert len(model.readout.decoder_lora) == 20
    assert all(m.n_adapters == len(LANGS) for m in model.readout.decoder_lora)
    shared = build_model(s2s_config(whisper_base, "shared-lora"))
    assert shared.config.layout.decoder == "shared" and all(m.n_adapters == 1 for m in shared.readout.decoder_lora)
    assert model.readout.kind == "seq2seq" and not list(model.readout.parameters())  # no head of ours


def test_zero_lora_forced_language_equals_transformers_generate(whisper_base):
    """Every LoRA zero (a fresh model): our single batched, language-routed decode gives the ids of
    transformers' generate(language=...) on the unmodified Whisper, utterance by utterance."""
    model = build_model(s2s_config(whisper_base)).eval()
    wavs, langs = waves([1.0, 2.0, 1.5], seed=3), ["fr", "de", "fr"]
    ours = decode(model, wavs, langs)
    for m in model.lora_modules():
        assert float(m.lora_B.detach().abs().sum()) == 0.0
    plain = WhisperForConditionalGeneration(_hf_config(model.config.backbone))  # no LoRA anywhere
    plain.load_state_dict(
        {n.replace(".base.", "."): t for n, t in model.backbone.generator.state_dict().items() if ".lora_" not in n}
    )
    plain.generation_config = model.backbone.generator.generation_config
    fe = model.backbone.feature_extractor
    for w, lang, got in zip(wavs, langs, ours, strict=True):
        feats = fe(w, sampling_rate=16000, return_tensors="pt").input_features
        ids = plain.generate(feats, language=lang, task="transcribe", max_new_tokens=12, do_sample=False)
        special = set(model.backbone.tokenizer.all_special_ids)
        assert got == [t for t in ids[0].tolist() if t not in special]
        assert len(got) > 0


def test_routing_is_per_utterance_through_sorting_and_beams(whisper_base):
    """Random LoRA, so every language's adapters differ: a mixed batch (not sorted by language),
    greedy or with beams, merged or not, gives each utterance the ids it gets alone."""
    model = build_model(s2s_config(whisper_base)).eval()
    randomize_adapters(model, scale=0.05)
    wavs, langs = waves([1.0, 1.4, 0.8, 1.2], seed=5), ["en", "de", "en", "fr"]
    for beams in (1, 3):
        batched = decode(model, wavs, langs, num_beams=beams)
        alone = [decode(model, [w], [lang], num_beams=beams)[0] for w, lang in zip(wavs, langs, strict=True)]
        assert batched == alone
        other = decode(model, wavs, ["de", "de", "de", "de"], num_beams=beams)
        assert other != batched  # the routed LoRA (and the language token) matter
        model.merge(routed=True)
        assert decode(model, wavs, langs, num_beams=beams) == batched
        model.unmerge()


def test_true_length_masks_padding_in_cross_attention(whisper_base):
    model = build_model(s2s_config(whisper_base, encoder_input="true-length")).eval()
    randomize_adapters(model, scale=0.05)
    wavs, langs = waves([0.5, 2.0], seed=7), ["de", "en"]
    feats = model.prepare(wavs)
    assert feats.values.shape[-1] == 200  # each utterance's own frames, not 30 s
    batched = decode(model, wavs, langs)
    assert batched == [decode(model, [w], [lang])[0] for w, lang in zip(wavs, langs, strict=True)]
    padded_30s = build_model(s2s_config(whisper_base)).prepare(wavs)
    assert padded_30s.values.shape[-1] == 3000 and padded_30s.lengths.tolist() == [3000, 3000]


def test_teacher_forcing_labels_text_and_end_token_only():
    prefix = torch.tensor([[1, 2, 3, 4], [1, 5, 3, 4]])
    inputs, labels = teacher_forcing(prefix, [[10, 11], [12]], eot=99)
    assert inputs.tolist() == [[1, 2, 3, 4, 10, 11], [1, 5, 3, 4, 12, 99]]
    assert labels.tolist() == [[IGNORE] * 3 + [10, 11, 99], [IGNORE] * 3 + [12, 99, IGNORE]]


def test_model_directory_reloads_identically(whisper_base, tmp_path):
    model = build_model(s2s_config(whisper_base)).eval()
    randomize_adapters(model, scale=0.05)
    save_model(model, tmp_path / "m")
    again = load_model(tmp_path / "m")
    assert again.config.to_dict() == model.config.to_dict()
    wavs = waves([1.0, 1.3], seed=2)
    assert decode(again, wavs, ["de", "fr"]) == decode(model, wavs, ["de", "fr"])
    a, b = model(model.prepare(wavs)), again(again.prepare(wavs))
    assert torch.equal(a.lid_logprobs, b.lid_logprobs) and torch.equal(a.encoder_out, b.encoder_out)


def test_seq2seq_refuses_what_it_cannot_be(whisper_base):
    with pytest.raises(HloraError, match="seq2seq needs a Whisper backbone"):
        ModelConfig("hlora", BackboneRef("hubert", config=TINY["hubert"]), ["de"], k=1, backbone_mode="seq2seq")
    with pytest.raises(HloraError, match="ctc model type has no seq2seq form"):
        s2s_config(whisper_base, "ctc")
    with pytest.raises(HloraError, match="unknown encoder input 'padded'"):
        s2s_config(whisper_base, encoder_input="padded")
