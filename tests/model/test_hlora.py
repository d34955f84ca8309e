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


@pytest.mark.parametrize("device", ["cpu", *(["cuda"] if torch.cuda.is_available() else [])])
@pytest.mark.parametrize("routing_mode", ["oracle", "predicted"])
def test_a_merged_bf16_model_reads_its_routed_layers_and_heads_in_grouped_matmuls(
    kind, routing_mode, device, monkeypatch
):
    from hlora_cli.model import lora
    from tests.model.test_lora import Ops

    if not lora.grouped_routing(torch.device(device, 0) if device == "cuda" else torch.device(device), torch.bfloat16):
        pytest.skip("no grouped matmul kernel in torch for this GPU (compute capability 9-10)")
    model = build_model(tiny_config(kind, k=1)).eval().to(device)  # 1 shared layer, 3 routed ones
    randomize_adapters(model, seed=2)
    feats = model.prepare(waves([0.9, 0.5, 1.2, 0.7, 1.0], seed=4)).to(device)
    langs = torch.tensor([1, 3, 1, 0, 3], device=device)  # unsorted: the model core sorts the batch
    model.merge(routed=True)
    routed = sum(m.routed for m in model.lora_modules())
    with torch.no_grad(), torch.autocast(device, dtype=torch.bfloat16):
        with Ops() as ops:
            grouped = model(feats, routing_mode, langs)
        monkeypatch.setattr(lora, "grouped_routing", lambda device, dtype: False)
        with Ops() as loop_ops:
            loop = model(feats, routing_mode, langs)
    assert ops.seen.count("aten._grouped_mm") == routed + 1  # each routed module, and the heads
    runs = {"aten._unique2", "aten.unique_consecutive"}  # the loop asks the host for each layer's runs
    assert not runs & set(ops.seen) and runs & set(loop_ops.seen)
    assert torch.equal(grouped.lang_ids, loop.lang_ids) and grouped.ctc_logprobs.shape == loop.ctc_logprobs.shape
    assert torch.equal(grouped.ctc_logprobs.isinf(), loop.ctc_logprobs.isinf())  # each head's own columns
    for b in range(5):
        torch.testing.assert_close(valid(grouped, b), valid(loop, b), atol=0.05, rtol=0)


def test_merged_heads_read_in_grad_mode_or_unmerged_as_before():
    from hlora_cli.model.heads import CTCHeads

    torch.manual_seed(0)
    heads = CTCHeads(16, [5, 9, 7])
    h, route = torch.randn(4, 6, 16), torch.tensor([0, 1, 1, 2])
    with torch.no_grad():
        loop = heads(h, route, ordered=True)  # not merged: the loop
        heads.merge()
        assert heads.stacked[0].shape == (3, 16, 16) and heads.stacked[1][0, 5:].isinf().all()
        stacked = heads(h, route, ordered=True)  # fp32: no grouped kernel, the loop
    torch.testing.assert_close(stacked, loop, atol=0, rtol=0)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        trained = heads(h, route, ordered=True)  # grad mode: the loop (its unread heads get no gradient)
        with torch.no_grad():
            grouped = heads(h, route, ordered=True)
    assert grouped.shape == (4, 6, 9) and torch.equal(grouped.isinf(), loop.isinf())
    torch.testing.assert_close(grouped, trained.detach(), atol=0.03, rtol=0)
    trained.nan_to_num(0, 0, 0).sum().backward()
    assert heads.heads[0].weight.grad is not None
    heads.unmerge()
    assert heads.stacked is None
