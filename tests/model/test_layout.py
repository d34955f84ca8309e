"""k as the HLoRA paper defines it (layers 1..k shared, LID after k, k+1..N per language), the
layout in config.json, old-format directories, soft routing, the frame LID head, the ctc type."""

import json

import pytest
import torch

from hlora_cli.errors import HloraError
from hlora_cli.model import BackboneRef, ModelConfig, build_model, load_model, save_model
from hlora_cli.model.checkpoint import CONFIG, FINETUNED
from hlora_cli.model.config import LIDConfig, layer_plan
from tests.conftest import LANGS, TINY, randomize_adapters, tiny_config, waves

HUBERT_12 = {**TINY["hubert"], "hidden_size": 32, "intermediate_size": 64, "num_hidden_layers": 12}


def test_k9_on_a_12_layer_hubert_is_9_shared_and_3_routed():
    cfg = ModelConfig(
        "hlora", BackboneRef("hubert", config=HUBERT_12), list(LANGS), vocabs=tiny_config("hubert").vocabs, k=9
    )
    model = build_model(cfg)
    assert model.layer_lora == ["shared"] * 9 + ["routed"] * 3
    assert model.lid_after == 9
    assert [len(m) for m in model.lora] == [6] * 12  # six targets per layer
    assert all(m.n_adapters == 1 for layer in model.lora[:9] for m in layer)
    assert all(m.n_adapters == len(LANGS) for layer in model.lora[9:] for m in layer)
    assert model.layout.describe() == "layers 1-9 shared LoRA, LID after layer 9, layers 10-12 per language"
    assert cfg.to_dict()["layout"] == {
        "shared": list(range(1, 10)),
        "routed": [10, 11, 12],
        "finetuned": [],
        "lid_after": 9,
        "fused": [],
        "decoder": "",  # a ctc model: no decoder LoRA
    }


@pytest.mark.parametrize("k", [1, 2, 3])
def test_layout_for_every_k(k):
    layout = layer_plan("hlora", 4, k)
    assert layout.shared == list(range(1, k + 1)) and layout.routed == list(range(k + 1, 5))
    assert layout.lid_after == k


@pytest.mark.parametrize("k", [0, 4, None])
def test_invalid_k_names_the_valid_range(k):
    with pytest.raises(HloraError, match=rf"k={k} is outside 1\.\.3 for a 4-layer encoder: k counts the shared lower"):
        layer_plan("hlora", 4, k)


def test_other_types_layouts():
    assert layer_plan("shared-lora", 4, None).describe() == "layers 1-4 shared LoRA, LID after layer 4"
    assert layer_plan("lidlora", 4, None).describe() == "layers 1-4 per language"
    assert layer_plan("ctc", 4, None, freeze_layers=1).describe() == "layers 2-4 fully fine-tuned"


def test_old_format_directory_loads_with_the_layout_it_was_trained_with(tmp_path):
    # Before format 2, k counted the routed top layers: k=1 on 4 layers = 3 shared + 1 routed.
    model = build_model(tiny_config("whisper", k=3)).eval()
    randomize_adapters(model)
    save_model(model, tmp_path / "m")
    config = json.loads((tmp_path / "m" / CONFIG).read_text())
    assert config["format_version"] == 2 and config["layout"]["lid_after"] == 3
    del config["format_version"], config["layout"], config["lid"]["head"]
    config["k"] = 1
    (tmp_path / "m" / CONFIG).write_text(json.dumps(config))
    old = load_model(tmp_path / "m")
    assert old.config.k == 3 and old.layer_lora == ["shared"] * 3 + ["routed"] and old.lid_after == 3
    feats = model.prepare(waves([0.7, 0.4], seed=3))
    with torch.no_grad():
        assert torch.equal(old(feats).ctc_logprobs, model(feats).ctc_logprobs)
    save_model(old, tmp_path / "again")  # re-saved in the current format
    again = json.loads((tmp_path / "again" / CONFIG).read_text())
    assert again["k"] == 3 and again["format_version"] == 2 and again["layout"]["routed"] == [4]


def test_a_layout_that_contradicts_k_is_refused(tmp_path):
    save_model(build_model(tiny_config("whisper", k=2)), tmp_path / "m")
    config = json.loads((tmp_path / "m" / CONFIG).read_text())
    config["k"] = 1
    (tmp_path / "m" / CONFIG).write_text(json.dumps(config))
    with pytest.raises(HloraError, match="does not match hlora with k=1"):
        load_model(tmp_path / "m")


def test_baseline_is_an_alias_of_shared_lora():
    assert tiny_config("whisper", "baseline").model_type == "shared-lora"


@pytest.mark.parametrize("kind", ["whisper", "hubert"])
def test_soft_routing_with_one_hot_posteriors_equals_hard_routing(kind):
    model = build_model(tiny_config(kind, k=1)).eval()
    randomize_adapters(model, seed=5)
    feats = model.prepare(waves([0.6, 0.6, 0.6], seed=2))
    langs = torch.tensor([2, 0, 2])
    one_hot = torch.nn.functional.one_hot(langs, len(LANGS)).float()
    with torch.no_grad():
        h, _ = model.backbone.embed(feats)
        hard = model._layer(1, h, None, langs, None)
        soft = model._layer(1, h, None, langs, one_hot)
        other = model._layer(1, h, None, (langs + 1) % len(LANGS), None)
        full_soft = model(feats, "oracle", langs)  # and through the whole forward, merged
        model.merge(routed=True)
        merged = model._layer(1, h, None, langs, None)
        merged_soft = model._layer(1, h, None, langs, one_hot)
    torch.testing.assert_close(soft, hard, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(merged_soft, merged, atol=1e-4, rtol=1e-4)
    assert not torch.allclose(hard, other, atol=1e-3)  # the language's LoRA matters
    assert full_soft.route_weights is None


def test_soft_and_top2_routing_mix_the_languages_by_the_lid_posterior():
    model = build_model(tiny_config("whisper", k=2)).eval()
    randomize_adapters(model, seed=1)
    feats = model.prepare(waves([0.8, 0.6], seed=4))
    with torch.no_grad():
        hard, soft, top2 = (model(feats, r) for r in ("predicted", "soft", "top2"))
    assert hard.route_weights is None
    torch.testing.assert_close(soft.route_weights, soft.lid_logprobs.exp())
    assert ((top2.route_weights > 0).sum(-1) == 2).all()
    torch.testing.assert_close(top2.route_weights.sum(-1), torch.ones(2))
    assert torch.equal(hard.lang_ids, soft.lang_ids)  # the head is the argmax language's
    assert not torch.allclose(hard.ctc_logprobs, soft.ctc_logprobs)


def test_frame_lid_head_averages_frame_posteriors_over_valid_frames_only():
    cfg = tiny_config("whisper", k=2, lid=LIDConfig(head="frame"))
    model = build_model(cfg).eval()
    randomize_adapters(model, seed=2)
    w = waves([0.9, 0.4], seed=6)
    with torch.no_grad():
        batch = model.identify(model.prepare(w))
        alone = model.identify(model.prepare(w[1:]))
    torch.testing.assert_close(batch[1:], alone, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(batch.exp().sum(-1), torch.ones(2))
    assert model.lid_head.frame_linear.out_features == len(LANGS) and not hasattr(model.lid_head, "mlp")


def test_ctc_model_fine_tunes_the_encoder_and_reads_its_language_from_prefix_tokens(tmp_path):
    model = build_model(tiny_config("hubert", "ctc", freeze_layers=1))
    trainable = {n for n, p in model.named_parameters() if p.requires_grad}
    assert not any("feature_extractor" in n for n in trainable)  # the conv frontend stays frozen
    assert not any(".layers.0." in n for n in trainable) and any(".layers.1." in n for n in trainable)
    assert not model.lora_modules() and model.lid_head is None and model.has_lid
    with torch.no_grad():
        model.eval()
        feats = model.prepare(waves([0.8, 0.6], seed=1))
        out = model(feats)
        # make <de> the most likely prefix token: the LID follows it
        de = model.config.shared_vocab.index("<de>")
        model.readout.heads[0].bias[de] += 50
        out2 = model(feats)
    assert out.lid_logprobs.shape == (2, len(LANGS))
    assert out2.lang_ids.tolist() == [LANGS.index("de")] * 2
    save_model(model, tmp_path / "m")
    assert (tmp_path / "m" / FINETUNED).exists()
    loaded = load_model(tmp_path / "m")
    with torch.no_grad():
        assert torch.equal(loaded(feats).ctc_logprobs, out2.ctc_logprobs)


def test_ctc_model_needs_prefix_tokens():
    cfg = tiny_config("whisper", "ctc")
    cfg.shared_vocab = [t for t in cfg.shared_vocab if not t.startswith("<") or t in ("<blank>", "<unk>")]
    with pytest.raises(HloraError, match="lacks <en>, <de>, <fr>, <ja>: make it with `hlora prepare vocab --prefix"):
        build_model(cfg)


@pytest.mark.parametrize("model_type", ["hlora", "ctc"])
def test_gradient_checkpointing_gives_the_same_loss_and_gradients(model_type):
    model = build_model(tiny_config("whisper", model_type, k=2))
    randomize_adapters(model, seed=3, scale=0.05)
    feats = model.prepare(waves([0.7, 0.5], seed=9))
    langs = torch.tensor([0, 2])
    grads = {}
    for on in (False, True):
        model.zero_grad()
        model.train()
        model.gradient_checkpointing = on
        torch.manual_seed(0)
        out = model(feats, "oracle", langs)
        out.ctc_logprobs[..., 1].mean().backward()  # log-probability of one token: every weight has a say
        grads[on] = {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}
    assert grads[True].keys() == grads[False].keys() and len(grads[True]) > 0
    assert all(g.abs().sum() > 0 for n, g in grads[False].items() if "lid_head" not in n)
    for n in grads[True]:
        torch.testing.assert_close(grads[True][n], grads[False][n], atol=1e-5, rtol=1e-4)
