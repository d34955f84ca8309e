import pytest
import torch

from hlora_cli.errors import HloraError
from hlora_cli.model import build_model
from tests.conftest import randomize_adapters, tiny_config, waves

ATOL = 1e-5


def valid(out, b):
    """Utterance b's valid frames and the columns of its head."""
    return out.ctc_logprobs[b, : out.out_lengths[b]]


def test_forward_shapes(tiny_model):
    feats = tiny_model.prepare(waves([1.0, 0.5, 0.8]))
    out = tiny_model(feats)
    assert out.lid_logprobs.shape == (3, 4)
    torch.testing.assert_close(out.lid_logprobs.exp().sum(-1), torch.ones(3))
    assert out.ctc_logprobs.shape == (3, 50, 8)  # padded to the largest inventory
    assert out.lang_ids.tolist() == out.lid_logprobs.argmax(-1).tolist()
    assert out.out_lengths.tolist() == [50, 25, 40]
    for b, lang in enumerate(out.lang_ids.tolist()):
        v = len(tiny_model.vocab(lang))
        torch.testing.assert_close(valid(out, b)[:, :v].exp().sum(-1), torch.ones(int(out.out_lengths[b])))
        assert torch.isneginf(valid(out, b)[:, v:]).all()


def test_only_adapters_and_heads_learn_and_backbone_is_bit_identical(tiny_model):
    frozen = {n: p.clone() for n, p in tiny_model.backbone.named_parameters() if not p.requires_grad}
    tiny_model.train()
    feats = tiny_model.prepare(waves([0.9, 0.6]))
    out = tiny_model(feats, "oracle", torch.tensor([0, 3]))
    loss = -valid(out, 0)[:, 0].mean() - out.lid_logprobs[:, 0].mean()
    opt = torch.optim.AdamW([p for p in tiny_model.parameters() if p.requires_grad], lr=1e-2)
    loss.backward()
    with_grad = {n for n, p in tiny_model.named_parameters() if p.grad is not None}
    assert with_grad and all(("lora_" in n) or n.startswith(("lid_head.", "readout.")) for n in with_grad)
    assert any("lora_B" in n for n in with_grad) and any(n.startswith("lid_head.") for n in with_grad)
    opt.step()
    for n, p in tiny_model.backbone.named_parameters():
        if not p.requires_grad:
            assert torch.equal(p, frozen[n]), n


@pytest.mark.parametrize("model_type", ["hlora", "lidlora", "baseline"])
def test_mixed_batch_equals_each_utterance_alone(kind, model_type):
    model = build_model(tiny_config(kind, model_type)).eval()
    randomize_adapters(model)
    wavs, langs = waves([0.9, 0.5, 1.2, 0.7], seed=1), torch.tensor([2, 0, 3, 1])
    with torch.no_grad():
        batch = model(model.prepare(wavs), "oracle", langs)
        for b, w in enumerate(wavs):
            alone = model(model.prepare([w]), "oracle", langs[b : b + 1])
            torch.testing.assert_close(valid(batch, b), valid(alone, 0), atol=ATOL, rtol=0)
            if model.lid_head is not None:
                torch.testing.assert_close(batch.lid_logprobs[b], alone.lid_logprobs[0], atol=ATOL, rtol=0)


def test_routing_changes_the_result(tiny_model):
    # A guard for the test above: with other languages' adapters, the output differs.
    feats = tiny_model.prepare(waves([0.9]))
    with torch.no_grad():
        a = tiny_model(feats, "oracle", torch.tensor([0]))
        b = tiny_model(feats, "oracle", torch.tensor([1]))
    assert (valid(a, 0)[:, :5] - valid(b, 0)[:, :5]).abs().max() > 1e-2


def test_single_pass_equals_oracle_when_lid_is_right(tiny_model):
    feats = tiny_model.prepare(waves([0.9, 0.5, 1.2, 0.7], seed=2))
    with torch.no_grad():
        single = tiny_model(feats, "predicted")
        oracle = tiny_model(feats, "oracle", single.lang_ids)
        assert torch.equal(single.lang_ids, oracle.lang_ids)
        torch.testing.assert_close(single.ctc_logprobs, oracle.ctc_logprobs, atol=ATOL, rtol=0)


def test_merged_equals_unmerged(tiny_model):
    feats = tiny_model.prepare(waves([0.9, 0.5, 1.2, 0.7], seed=4))
    langs = torch.tensor([1, 3, 1, 0])
    with torch.no_grad():
        before = tiny_model(feats, "oracle", langs)
        tiny_model.merge(routed=True)
        merged = tiny_model(feats, "oracle", langs)
        tiny_model.unmerge()
        after = tiny_model(feats, "oracle", langs)
    for b in range(4):
        torch.testing.assert_close(valid(merged, b), valid(before, b), atol=1e-4, rtol=0)
    torch.testing.assert_close(merged.lid_logprobs, before.lid_logprobs, atol=1e-4, rtol=0)
    torch.testing.assert_close(after.ctc_logprobs, before.ctc_logprobs, atol=1e-5, rtol=0)


def test_merged_model_refuses_training(tiny_model):
    tiny_model.merge()
    with pytest.raises(HloraError, match="unmerge"):
        tiny_model.train()


def test_identify_matches_the_full_forward(tiny_model):
    feats = tiny_model.prepare(waves([0.9, 0.5], seed=5))
    with torch.no_grad():
        torch.testing.assert_close(tiny_model.identify(feats), tiny_model(feats).lid_logprobs)


@pytest.mark.parametrize("k", [0, 4, -1])
def test_k_outside_range_is_a_clear_error(k):
    with pytest.raises(HloraError, match=rf"k={k} is outside 1..3 for a 4-layer encoder"):
        build_model(tiny_config("whisper", k=k))


def test_language_without_head_is_a_clear_error(tiny_model):
    with pytest.raises(HloraError, match=r"language\(s\) ko have no LoRA/head in this model"):
        tiny_model.lang_index(["en", "ko"])
    cfg = tiny_config("whisper")
    del cfg.vocabs["ja"]
    with pytest.raises(HloraError, match=r"language\(s\) ja have no token inventory"):
        build_model(cfg)


def test_lidlora_needs_a_language():
    model = build_model(tiny_config("whisper", "lidlora"))
    feats = model.prepare(waves([0.5]))
    with pytest.raises(HloraError, match="lidlora model has no LID head"):
        model(feats)
    with pytest.raises(HloraError, match="oracle routing needs the language"):
        model(feats, "oracle")


def test_attentive_pooling_ignores_padding():
    from hlora_cli.model import LIDConfig

    model = build_model(tiny_config("whisper", lid=LIDConfig(pooling="attentive", hidden=32))).eval()
    randomize_adapters(model)
    short, long = waves([0.5, 1.3], seed=7)
    with torch.no_grad():
        alone = model.identify(model.prepare([short]))
        padded = model.identify(model.prepare([short, long]))
    torch.testing.assert_close(padded[0], alone[0], atol=ATOL, rtol=0)
