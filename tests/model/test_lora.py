import pytest
import torch
from torch import nn

from hlora_cli.errors import HloraError
from hlora_cli.model import LoRAConfig, build_model, load_backbone, lora
from hlora_cli.model.backbone import additive_mask
from hlora_cli.model.lora import LoRALinear, grouped_routing, inject_lora, route_picks, routing
from tests.conftest import randomize_adapters, tiny_config, waves


def hidden_states(bb, feats, routes=None):
    h, lengths = bb.embed(feats)
    mask = additive_mask(lengths, h.shape[1], h.dtype)
    for i in range(bb.num_layers):
        h = bb.layer(i, h, mask)
    return bb.finish(h)


def test_fresh_lora_is_exactly_the_bare_backbone(kind):
    model = build_model(tiny_config(kind, "baseline")).eval()  # shared LoRA in every layer, B = 0
    bare = load_backbone(model.config.backbone).eval()
    feats = model.prepare(waves([0.6, 1.1]))
    with torch.no_grad():
        assert all(float(m.lora_B.abs().sum()) == 0 for m in model.lora_modules())
        assert torch.equal(hidden_states(model.backbone, feats), hidden_states(bare, feats))


def test_routed_lora_picks_its_adapter_per_sample():
    torch.manual_seed(0)
    layer = LoRALinear(nn.Linear(6, 5), 3, LoRAConfig(rank=2))
    nn.init.normal_(layer.lora_B)
    x = torch.randn(4, 7, 6)
    route = torch.tensor([2, 0, 2, 1])
    with routing([layer], route):
        batched = layer(x)
    for b, a in enumerate(route.tolist()):
        expected = layer.base(x[b]) + layer.scaling * x[b] @ layer.lora_A[a].T @ layer.lora_B[a].T
        torch.testing.assert_close(batched[b], expected, atol=1e-5, rtol=0)
    with pytest.raises(HloraError, match="routed LoRA called without a route"):
        layer(x)


@pytest.mark.parametrize("routed", [False, True])
def test_merge_equals_unmerged_and_unmerge_restores(routed):
    torch.manual_seed(0)
    layer = LoRALinear(nn.Linear(6, 5), 3 if routed else 1, LoRAConfig(rank=2))
    nn.init.normal_(layer.lora_B)
    w0 = layer.base.weight.clone()
    x, route = torch.randn(4, 7, 6), torch.tensor([2, 0, 2, 1])
    with routing([layer], route):
        before = layer(x)
        layer.merge(routed=True)
        merged = layer(x)
    torch.testing.assert_close(merged, before, atol=1e-5, rtol=0)
    layer.unmerge()
    torch.testing.assert_close(layer.base.weight, w0, atol=1e-6, rtol=0)
    assert not layer.merged and layer.merged_weights is None


def test_unknown_and_missing_targets_are_clear_errors(kind):
    bb = load_backbone(tiny_config(kind).backbone)
    with pytest.raises(HloraError, match="unknown LoRA target 'gate'"):
        inject_lora(bb.layers()[0], bb.target_paths, 1, LoRAConfig(targets=["gate"]), "layer 1")
    paths = {**bb.target_paths, "ff_in": "no_such.module"}
    with pytest.raises(HloraError, match=r"LoRA target 'ff_in' \(no_such.module\) is not a linear layer of layer 1"):
        inject_lora(bb.layers()[0], paths, 1, LoRAConfig(targets=["ff_in"]), "layer 1")


def test_target_subset_wraps_only_those(kind):
    model = build_model(tiny_config(kind, lora=LoRAConfig(rank=4, targets=["q", "v"])))
    assert len(model.lora_modules()) == 2 * 4
    randomize_adapters(model)
    trainable, _ = model.parameter_counts()
    lora = sum(m.lora_A.numel() + m.lora_B.numel() for m in model.lora_modules())
    # (2 shared layers x 1 adapter + 2 routed layers x 4 languages) x (q, v) x (A, B) x rank 4 x hidden 64
    assert lora == (2 * 1 + 2 * 4) * 2 * 2 * 4 * 64
    assert trainable > lora


def test_merged_routed_lora_runs_a_grouped_batch_under_bf16_autocast():
    # a bf16 input (what autocast hands the next layer) through the per-language out= matmuls
    torch.manual_seed(0)
    layer = LoRALinear(nn.Linear(6, 5), 3, LoRAConfig(rank=2))
    nn.init.normal_(layer.lora_B)
    x, route = torch.randn(4, 7, 6), torch.tensor([0, 0, 1, 2])  # sorted: three contiguous runs
    with torch.no_grad(), routing([layer], route):
        fp32 = layer(x)
        layer.merge(routed=True)
        with torch.autocast("cpu", dtype=torch.bfloat16):
            bf16 = layer(x.bfloat16())
    assert bf16.dtype == torch.bfloat16
    torch.testing.assert_close(bf16.float(), fp32, atol=0.1, rtol=0.05)


def test_route_picks_carry_the_scaling_only_where_the_dtype_holds_it():
    def lora(rank: int, alpha: float) -> LoRALinear:
        return LoRALinear(nn.Linear(6, 5), 3, LoRAConfig(rank=rank, alpha=alpha))

    route, two, third = torch.tensor([2, 0, 2]), lora(4, 8.0), lora(3, 1.0)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        picks, scaled = route_picks(route, [two, lora(8, 16.0)])
        assert picks.dtype == torch.bfloat16 and picks.tolist() == [[0, 0, 1], [1, 0, 0], [0, 0, 1]]
        assert torch.equal(scaled, 2.0 * picks)
        assert route_picks(route, [third])[1] is None  # bf16 would make it 0.33398: kept apart, exact
        assert route_picks(route, [two, lora(4, 16.0)])[1] is None  # one pick for two scalings: none
    picks, scaled = route_picks(route, [third])  # fp32: as exact as a multiply by 1/3 would be
    assert picks.dtype == torch.float32 and torch.equal(scaled, picks * (1 / 3))


class Ops(torch.utils._python_dispatch.TorchDispatchMode):
    """The aten operators a call dispatches, by name."""

    def __init__(self) -> None:
        super().__init__()
        self.seen: list[str] = []

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        self.seen.append(str(func.overloadpacket))
        return func(*args, **(kwargs or {}))


@pytest.mark.parametrize("rank", [2, 3])  # scaling 2 (carried by the pick of B), 1/3 (baddbmm's alpha)
def test_routed_lora_training_step_scatters_nothing_and_matches_per_sample(rank):
    torch.manual_seed(0)
    alpha = 4.0 if rank == 2 else 1.0
    layer = LoRALinear(nn.Linear(6, 5), 3, LoRAConfig(rank=rank, alpha=alpha))
    nn.init.normal_(layer.lora_B)
    x, route = torch.randn(4, 7, 6, requires_grad=True), torch.tensor([2, 0, 2, 1])
    with Ops() as ops, torch.autocast("cpu", dtype=torch.bfloat16), routing([layer], route):
        layer(x).float().sum().backward()
    assert not {"aten.index", "aten.index_put", "aten.index_put_"} & set(ops.seen)  # one-hot picks, not a scatter
    # bf16 holds 2 exactly: one multiply makes the scaled pick; 1/3 it would round: baddbmm's alpha,
    # which costs a multiply for each of its two input gradients
    assert ops.seen.count("aten.mul") == (1 if rank == 2 else 2)
    layer.lora_A.grad = layer.lora_B.grad = None
    with routing([layer], route):
        y = layer(x)
        y.square().sum().backward()
    for b, a in enumerate(route.tolist()):
        expected = layer.base(x[b]) + layer.scaling * x[b] @ layer.lora_A[a].T @ layer.lora_B[a].T
        torch.testing.assert_close(y[b], expected, atol=1e-5, rtol=0)
    ref = [layer.lora_A.grad.clone(), layer.lora_B.grad.clone()]
    layer.lora_A.grad = layer.lora_B.grad = None
    sum((layer.base(x[b]) + layer.scaling * x[b] @ layer.lora_A[a].T @ layer.lora_B[a].T).square().sum()
        for b, a in enumerate(route.tolist())).backward()  # fmt: skip
    torch.testing.assert_close(layer.lora_A.grad, ref[0], atol=1e-4, rtol=1e-5)
    torch.testing.assert_close(layer.lora_B.grad, ref[1], atol=1e-4, rtol=1e-5)


def test_grouped_routing_where_torch_has_the_kernel(monkeypatch):
    cpu = torch.device("cpu")
    assert grouped_routing(cpu, torch.bfloat16) and not grouped_routing(cpu, torch.float32)
    cuda = torch.device("cuda", 0)
    for capability, fused in (((8, 0), False), ((9, 0), True), ((10, 0), True), ((12, 0), False)):
        monkeypatch.setattr(torch.cuda, "get_device_capability", lambda d, c=capability: c)
        monkeypatch.setattr(lora, "_FUSED_GROUPED_MM", {})
        assert grouped_routing(cuda, torch.bfloat16) is fused
        assert lora._FUSED_GROUPED_MM == {0: fused}  # asked once: a compiled graph reads the answer
    assert not grouped_routing(cuda, torch.float16)


def test_a_merged_routed_layer_on_a_sorted_bf16_batch_is_one_grouped_matmul_without_host_sync():
    torch.manual_seed(0)
    layer = LoRALinear(nn.Linear(16, 24), 3, LoRAConfig(rank=2))
    nn.init.normal_(layer.lora_B)
    x, route = torch.randn(5, 7, 16), torch.tensor([0, 0, 2, 2, 2])  # sorted; adapter 1 routes no row
    with torch.no_grad(), routing([layer], route):
        unmerged = layer(x)
    layer.merge(routed=True)
    with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16):
        with routing([layer], route, frames=7):
            assert layer.offs[0].tolist() == [14, 14, 35] and layer.offs[1] == 7 and layer.groups is None
            with Ops() as ops:
                grouped = layer(x)
            with Ops() as other_ops:  # an input of other frames than the offsets were made for: the loop
                other = layer(torch.cat([x, x[:, :2]], dim=1))
        with routing([layer], route):  # not said to be sorted: the loop, which asks the host for the runs
            assert layer.offs is None and layer.groups == [(0, 0, 2), (2, 2, 5)]
            with Ops() as loop_ops:
                loop = layer(x)
    assert "aten._grouped_mm" not in other_ops.seen and torch.equal(other[:, :7], loop)
    assert ops.seen.count("aten._grouped_mm") == 1 and "aten._grouped_mm" not in loop_ops.seen
    assert not {"aten.index", "aten.unique_consecutive", "aten._local_scalar_dense"} & set(ops.seen)
    assert grouped.dtype == torch.bfloat16  # the bias added after the matmul's rounding: an ulp apart
    torch.testing.assert_close(grouped.float(), loop.float(), atol=0.02, rtol=0.01)
    torch.testing.assert_close(grouped.float(), unmerged, atol=0.1, rtol=0.05)
    with routing([layer], route, frames=7):  # fp32 (and rows grouped_mm cannot align): the loop
        assert layer.offs is None
    odd = LoRALinear(nn.Linear(6, 5), 3, LoRAConfig(rank=2))
    odd.merge(routed=True)
    with torch.autocast("cpu", dtype=torch.bfloat16), routing([odd], route, frames=7):
        assert odd.offs is None and odd.groups is not None
