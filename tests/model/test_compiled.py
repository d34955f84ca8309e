"""The compiled forward of a training step (model/compiled.py): traced by dynamo and AOTAutograd
(backend aot_eager: what inductor would compile, run eagerly), it gives the eager step's loss and
gradients for batches of any size and length, without a compile per shape."""

from __future__ import annotations

import pytest
import torch
from torch._dynamo.utils import counters

from hlora_cli.errors import HloraError
from hlora_cli.model import LoRAConfig, build_model
from hlora_cli.model.compiled import CompiledForward
from hlora_cli.model.losses import joint_loss
from tests.conftest import randomize_adapters, tiny_config, waves

# (seconds, languages) per batch: rows and lengths change batch to batch, one row alone among them
BATCHES = [([0.7, 0.6, 1.3, 0.65], [1, 0, 1, 2]), ([0.9], [3]), ([1.1, 0.8, 0.75], [0, 2, 0])]


def step(forward, model, feats, langs, routing) -> tuple[torch.Tensor, list[torch.Tensor]]:
    out = forward(feats, routing, langs if routing == "oracle" else None)
    targets = [[3, 4, 3]] * len(langs)
    loss = joint_loss(out, langs, targets, model.readout.vocab_sizes, 0.3).total
    params = [p for p in model.parameters() if p.requires_grad]
    return loss.detach(), list(torch.autograd.grad(loss, params, materialize_grads=True))


@pytest.mark.parametrize(("kind", "routing"), [("whisper", "oracle"), ("hubert", "predicted")])
def test_a_compiled_training_forward_gives_the_eager_loss_and_gradients(kind, routing):
    torch._dynamo.reset()
    counters.clear()
    model = build_model(tiny_config(kind, lora=LoRAConfig(4, 16.0, 0.0))).train()
    model.backbone.eval()  # the tiny configs' attention dropout would draw other masks compiled
    randomize_adapters(model)
    compiled = CompiledForward(model, torch.device("cpu"), for_training=True, backend="aot_eager")
    assert compiled.languages == model.languages  # the model's attributes read through
    for seconds, langs in BATCHES:
        feats, langs = model.prepare(waves(seconds)), torch.tensor(langs)
        loss, grads = step(model, model, feats, langs, routing)
        loss_c, grads_c = step(compiled, model, feats, langs, routing)
        # the compiled input is padded to whole seconds: the padded frames change nothing
        assert loss_c == pytest.approx(loss.item(), rel=1e-5)
        for g, g_c in zip(grads, grads_c, strict=True):
            torch.testing.assert_close(g_c, g, atol=1e-5 * g.abs().max().item() + 1e-8, rtol=1e-4)
    # symbolic shapes: one graph for any rows and length, and one for a lone row (torch
    # specialises sizes 0 and 1); not one per batch shape
    assert counters["stats"]["unique_graphs"] == 2


def test_compiled_training_on_a_cpu_is_refused_with_the_reason():
    model = build_model(tiny_config("whisper"))
    why = r"--compile trains on a CUDA GPU: on a CPU .* wrong gradients .*train with --no-compile"
    with pytest.raises(HloraError, match=why):
        CompiledForward(model, torch.device("cpu"), for_training=True)
    CompiledForward(model, torch.device("cpu"))  # decoding: its forward is right on a CPU (tests/infer)


@pytest.mark.parametrize("cast_at_merge", [True, False])
def test_a_merged_grouped_model_compiles_once_when_its_weights_are_cast_at_merge(cast_at_merge):
    # the merged weights' bf16 copies made inside the first compiled call would be recorded there,
    # and the next call would compile the model again
    torch._dynamo.reset()
    counters.clear()
    model = build_model(tiny_config("whisper", k=1)).eval()
    randomize_adapters(model)
    model.merge(routed=True, dtype=torch.bfloat16 if cast_at_merge else None)
    compiled = CompiledForward(model, torch.device("cpu"), backend="eager")
    feats, langs = model.prepare(waves([0.7, 0.6, 1.3, 0.65])), torch.tensor([1, 0, 3, 1])
    with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16):
        outs = [compiled(feats, "oracle", langs) for _ in range(3)]
        eager = model(feats, "oracle", langs)
    assert counters["stats"]["unique_graphs"] == (1 if cast_at_merge else 2)
    assert torch.equal(outs[-1].lang_ids, eager.lang_ids)
    for b, n in enumerate(eager.out_lengths.tolist()):
        torch.testing.assert_close(outs[-1].ctc_logprobs[b, :n], eager.ctc_logprobs[b, :n], atol=0.05, rtol=0)
