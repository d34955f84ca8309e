"""Frozen weights kept in bf16 for a bf16 training (model/precision.py): the same step, fewer casts."""

from __future__ import annotations

import collections

import pytest
import torch
from torch.utils._python_dispatch import TorchDispatchMode

from hlora_cli.model import build_model
from hlora_cli.model.losses import joint_loss
from hlora_cli.model.precision import keep_frozen_in
from tests.conftest import randomize_adapters, tiny_config, waves
from tests.model.conftest import s2s_config


class Ops(TorchDispatchMode):
    """Counts the operators dispatched (after autograd and autocast: what would run as kernels)."""

    def __init__(self) -> None:
        super().__init__()
        self.count: collections.Counter[str] = collections.Counter()

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        self.count[str(func.overloadpacket)] += 1
        return func(*args, **(kwargs or {}))


def trainable(model) -> list[torch.Tensor]:
    return [p for p in model.parameters() if p.requires_grad]


def ctc_step(model, feats, langs, targets) -> tuple[torch.Tensor, list[torch.Tensor]]:
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = model(feats, "oracle", langs)
    loss = joint_loss(out, langs, targets, model.readout.vocab_sizes, 0.3).total
    grads = torch.autograd.grad(loss, trainable(model), materialize_grads=True)
    return loss.detach(), list(grads)


def s2s_step(model, feats, langs, targets) -> tuple[torch.Tensor, list[torch.Tensor]]:
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = model(feats, "oracle", langs)
        logits, labels, _ = model.readout.teacher_forced(model, out, targets, False)
    loss = torch.nn.functional.cross_entropy(logits.float().flatten(0, 1), labels.flatten(), ignore_index=-100)
    return loss.detach(), list(torch.autograd.grad(loss, trainable(model), materialize_grads=True))


@pytest.mark.parametrize("which", ["hubert", "whisper", "seq2seq"])
def test_frozen_weights_in_bf16_give_the_same_step_with_fewer_casts(which, whisper_base):
    torch.manual_seed(0)
    if which == "seq2seq":
        cfg, step, targets = s2s_config(whisper_base), s2s_step, [[400, 401, 402], [500, 501]]
    else:
        cfg, step, targets = tiny_config(which), ctc_step, [[3, 4, 5], [6, 7]]
    model = build_model(cfg).train()
    randomize_adapters(model)
    feats = model.prepare(waves([0.7, 1.0]))
    langs = torch.tensor([0, 1])
    torch.manual_seed(1)  # the same dropout masks
    with Ops() as before:
        loss, grads = step(model, feats, langs, targets)
    names = list(model.state_dict())
    cast = keep_frozen_in(model.backbone, torch.bfloat16)
    torch.manual_seed(1)
    with Ops() as after:
        loss2, grads2 = step(model, feats, langs, targets)
    assert cast >= 2 * model.backbone.num_layers  # at least two frozen linears a layer
    assert torch.equal(loss, loss2)  # the same rounding, once instead of on every call
    assert all(torch.equal(a, b) for a, b in zip(grads, grads2, strict=True))
    # each cast module had autocast copy its weight (and bias) on every call: at least one copy fewer each
    assert before.count["aten._to_copy"] - after.count["aten._to_copy"] >= cast
    assert list(model.state_dict()) == names  # the same weights by name


def test_only_frozen_weights_are_cast_and_a_tied_embedding_keeps_fp32(whisper_base):
    model = build_model(s2s_config(whisper_base))
    bb = model.backbone
    assert bb.proj_out.weight is bb.decoder.embed_tokens.weight  # Whisper ties them
    assert keep_frozen_in(model, torch.float32) == 0
    keep_frozen_in(model.backbone, torch.bfloat16)
    assert bb.proj_out.weight.dtype == torch.bfloat16
    assert bb.decoder.embed_tokens.weight.dtype == torch.float32  # the embedding lookup is not autocast
    assert all(p.dtype == torch.float32 for p in model.parameters() if p.requires_grad)

    ctc = build_model(tiny_config("hubert", "ctc", k=None))  # every encoder layer trains
    keep_frozen_in(ctc.backbone, torch.bfloat16)
    assert all(p.dtype == torch.float32 for p in ctc.parameters() if p.requires_grad)
    linears = [m for m in ctc.backbone.modules() if isinstance(m, torch.nn.Linear)]
    assert linears and all(m.weight.dtype == torch.float32 and m.weight.requires_grad for m in linears)
    convs = [m for m in ctc.backbone.modules() if type(m) is torch.nn.Conv1d]  # the frozen feature encoder
    assert convs and all(m.weight.dtype == torch.bfloat16 and not m.weight.requires_grad for m in convs)
