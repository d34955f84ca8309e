"""The readout (model/readout.py): chosen once from the config, CTC heads or Whisper's decoder, each
computing its own loss and greedy text; the trainer and the recognizer ask nothing else."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from hlora_cli.data.batching import Example
from hlora_cli.data.manifest import Utterance
from hlora_cli.model import build_model
from hlora_cli.model.config import BACKBONE_MODES
from hlora_cli.model.ctc_decoding import greedy_hypothesis
from hlora_cli.model.losses import joint_loss
from hlora_cli.model.readout import READOUTS, CTCReadout, DecoderReadout, Objective
from tests.conftest import randomize_adapters, tiny_config, waves
from tests.model.conftest import s2s_config


def examples(langs: list[int], targets: list[list[int]]) -> list[Example]:
    return [
        Example(Utterance(f"u{i}", "a.wav", "en", "x", duration=1.0), lang, t)
        for i, (lang, t) in enumerate(zip(langs, targets, strict=True))
    ]


def test_each_backbone_mode_has_one_readout():
    assert sorted(READOUTS) == sorted(BACKBONE_MODES)
    assert (READOUTS["ctc"], READOUTS["seq2seq"]) == (CTCReadout, DecoderReadout)
    assert (CTCReadout.loss_name, DecoderReadout.loss_name) == ("ctc", "ce")


def test_ctc_readout_loss_and_greedy_texts_are_the_joint_objective_and_greedy_decoding():
    model = build_model(tiny_config("hubert")).train()
    randomize_adapters(model, seed=4)
    assert isinstance(model.readout, CTCReadout) and not model.readout.tells_language
    feats = model.prepare(waves([0.8, 1.0, 0.6], seed=1))
    batch = examples([0, 2, 1], [[3, 4], [3], [4, 3, 4]])
    torch.manual_seed(0)
    out, parts = model.readout.loss(model, feats, batch, "oracle", Objective(lid_weight=0.3))
    torch.manual_seed(0)  # the same dropout
    again = model(feats, "oracle", torch.tensor([0, 2, 1]))
    expected = joint_loss(again, torch.tensor([0, 2, 1]), [e.targets for e in batch], model.readout.vocab_sizes, 0.3)
    assert torch.equal(parts.total, expected.total) and torch.equal(parts.asr, expected.asr)
    assert out.lang_ids.tolist() == [0, 2, 1] and out.encoder_out is None
    texts = model.readout.greedy_texts(model, out, [0.8, 1.0, 0.6])
    lp = out.ctc_logprobs.detach().float().numpy()
    by_hand = []
    for b, r in enumerate([0, 2, 1]):
        vocab, frames = model.vocab(r), int(out.out_lengths[b])
        by_hand.append(greedy_hypothesis(lp[b, :frames, : len(vocab)], vocab, model.languages[r], 1).text)
    assert texts == by_hand
    assert model.readout.counts_emissions and len(model.readout.emitted(out)) == 3


def test_ctc_model_reads_its_language_from_prefix_tokens():
    model = build_model(tiny_config("hubert", "ctc", k=None)).eval()
    assert model.readout.tells_language and model.has_lid and model.lid_head is None
    out = model(model.prepare(waves([0.7], seed=2)))
    assert out.lid_logprobs.shape == (1, 4) and torch.allclose(out.lid_logprobs.exp().sum(), torch.tensor(1.0))


def test_routes_by_language_says_where_true_and_predicted_routing_differ(whisper_base):
    def routes(model_type: str, k: int | None = None) -> bool:
        return build_model(tiny_config("hubert", model_type, k=k)).routes_by_language

    assert (routes("hlora", 2), routes("lidlora"), routes("shared-lora"), routes("ctc")) == (True, True, False, False)
    # a Whisper decoder is forced to the routed language's token, even under one shared LoRA
    assert build_model(s2s_config(whisper_base, "shared-lora")).routes_by_language


def test_decoder_readout_loss_is_teacher_forced_cross_entropy(whisper_base):
    model = build_model(s2s_config(whisper_base)).eval()
    randomize_adapters(model, scale=0.05)
    assert isinstance(model.readout, DecoderReadout) and not model.readout.counts_emissions
    feats = model.prepare(waves([1.0, 1.2], seed=6))
    tok = model.backbone.tokenizer
    targets = [tok.encode(" hallo welt", add_special_tokens=False), tok.encode(" bonjour", add_special_tokens=False)]
    batch = examples([0, 1], targets)
    with torch.no_grad():
        out, parts = model.readout.loss(model, feats, batch, "oracle", Objective(lid_weight=0.0))
        logits, labels, _ = model.readout.teacher_forced(model, out, targets, hidden=False)
    per_token = F.cross_entropy(logits.float().transpose(1, 2), labels, ignore_index=-100, reduction="none")
    valid = labels != -100
    assert valid.sum(1).tolist() == [len(t) + 1 for t in targets]  # the text and the end token
    expected = ((per_token * valid).sum(1) / valid.sum(1)).mean()
    assert torch.allclose(parts.asr, expected) and torch.equal(parts.total, parts.asr)
    assert out.ctc_logprobs is None and out.encoder_out.shape[0] == 2
    texts = model.readout.greedy_texts(model, out, [1.0, 1.2])
    assert len(texts) == 2 and all(isinstance(t, str) for t in texts)
