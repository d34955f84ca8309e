"""LoRA around a frozen nn.Linear: one adapter (shared LoRA) or one per language (routed LoRA).

The wrapped layer keeps its base weight untouched; each adapter adds scaling * B @ A with B
initialised to zero, so a fresh adapter is exactly the bare backbone. A routed LoRA picks its
adapter per sample from `route` (set by the model core for one forward), so a mixed-language batch
runs in one batched forward.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterator
from contextlib import contextmanager

import torch
from torch import nn

from hlora_cli.errors import HloraError
from hlora_cli.model.config import LORA_TARGETS, LoRAConfig


class LoRALinear(nn.Module):
    """y = base(x) + scaling * B[a] A[a] dropout(x), with adapter a chosen per sample.

    lora_A : shape = (n_adapters, rank, in_features)
    lora_B : shape = (n_adapters, out_features, rank)
    """

    def __init__(self, base: nn.Linear, n_adapters: int, cfg: LoRAConfig) -> None:
        super().__init__()
        if cfg.rank < 1:
            raise HloraError(f"LoRA rank must be >= 1, got {cfg.rank}")
        self.base = base
        self.n_adapters = n_adapters
        self.scaling = cfg.alpha / cfg.rank
        self.rounds_scaling = _rounding(self.scaling)  # dtypes that would round it (route_picks)
        self.lora_A = nn.Parameter(torch.empty(n_adapters, cfg.rank, base.in_features))
        self.lora_B = nn.Parameter(torch.zeros(n_adapters, base.out_features, cfg.rank))
        for a in self.lora_A:  # the initialisation nn.Linear (and peft) use for A
            nn.init.kaiming_uniform_(a, a=math.sqrt(5))
        self.dropout = nn.Dropout(cfg.dropout) if cfg.dropout > 0 else nn.Identity()
        self.route: torch.Tensor | None = None  # (batch,) adapter index per sample, routed only
        self.weights: torch.Tensor | None = None  # (batch, n_adapters) soft routing weights, routed only
        self.groups: list[tuple[int, int, int]] | None = None  # (adapter, start, end) runs of `route`
        # grouped_mm's offsets, shape = (n_adapters,) int32 (each adapter's end row in the flattened
        # input), and the frames an utterance they were worked out for
        self.offs: tuple[torch.Tensor, int] | None = None
        # (batch, n_adapters) one-hot of `route`, and the same times `scaling` (or None): route_picks
        self.picks: tuple[torch.Tensor, torch.Tensor | None] | None = None
        self.merged = False  # shared adapter (or, fused, the weighted sum of all) folded into base.weight
        self.fused_weights: torch.Tensor | None = None  # (n_adapters,) the fusion weights merged, fused only
        self.merged_weights: torch.Tensor | None = None  # (n_adapters, out, in), routed only
        self.merged_cast: tuple[torch.Tensor, torch.Tensor | None] | None = None  # merged weights, bias at one dtype

    @property
    def routed(self) -> bool:
        return self.n_adapters > 1

    def delta_weight(self) -> torch.Tensor:
        """scaling * B @ A for every adapter: shape = (n_adapters, out_features, in_features)."""
        return self.scaling * torch.bmm(self.lora_B, self.lora_A)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x : shape = (batch, time, in_features)."""
        if self.merged:
            return self.base(x)
        if self.routed and self.weights is None:  # hard routing
            if self.route is None:
                raise HloraError("routed LoRA called without a route: run it through the model core")
            if self.merged_weights is not None:
                return self._forward_merged(x, _per_row(self.route, x))
        # Cast once for both products (autocast would cast x for each), and add the update in the
        # matmul that makes it (addmm / baddbmm: no separate scale and add): fewer kernels a step.
        if x.is_floating_point():
            x = x.to(compute_dtype(x.device, x.dtype))
        y = self.base(x)
        if not self.routed:  # flatten, not [0]: a view whose backward copies nothing
            xa = nn.functional.linear(self.dropout(x), self.lora_A.flatten(0, 1))
            b = self.lora_B.flatten(0, 1)
            return torch.addmm(y.flatten(0, -2), xa.flatten(0, -2), b.T, alpha=self.scaling).view_as(y)
        if self.weights is not None:
            return y + self._soft_delta(x, _per_row(self.weights, x))
        # Each row's adapter picked by a one-hot matmul rather than indexing: its backward is one
        # matmul, where indexing's is a zero fill and an accumulating scatter (a sort on a GPU).
        picks, scaled = self.picks if self.picks is not None else route_picks(self.route, [self])
        picks, scaled = _per_row(picks, x), None if scaled is None else _per_row(scaled, x)
        rank = self.lora_A.shape[1]
        a = torch.mm(picks, self.lora_A.flatten(1)).view(-1, rank, self.base.in_features)  # (batch, rank, in)
        b = torch.mm(picks if scaled is None else scaled, self.lora_B.flatten(1)).view(-1, self.base.out_features, rank)
        xa = torch.bmm(self.dropout(x), a.transpose(1, 2))
        return torch.baddbmm(y, xa, b.transpose(1, 2), alpha=1.0 if scaled is not None else self.scaling)

    def _soft_delta(self, x: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
        """sum_a weights[b, a] * scaling * B[a] A[a] x: every adapter, mixed per sample. Costs
        n_adapters times the rank of one adapter, and no merged weight applies."""
        xa = torch.einsum("bti,nri->btnr", self.dropout(x), self.lora_A.to(x.dtype))
        xa = xa * weights.to(xa.dtype)[:, None, :, None]
        return self.scaling * torch.einsum("btnr,nor->bto", xa, self.lora_B.to(xa.dtype))

    def _forward_merged(self, x: torch.Tensor, route: torch.Tensor) -> torch.Tensor:
        # One plain matmul per language present in the batch: the cost of the bare layer. When the
        # model core has sorted the batch by language (`groups`), each matmul writes straight into
        # its contiguous slice of the output; otherwise rows are gathered and scattered.
        weights, bias, x = self._merged_for(x)
        own_rows = len(self.route) == len(route)  # not repeated per beam: the runs set for the layer hold
        if self.offs is not None and own_rows and x.dim() == 3 and x.shape[1] == self.offs[1]:
            return self._forward_grouped(x, weights, bias)
        groups = self.groups if self.groups is not None and own_rows else None
        groups = groups if groups is not None else contiguous_groups(route)
        if groups is not None and len(groups) == 1:
            return nn.functional.linear(x, weights[groups[0][0]], bias)
        y = x.new_empty(*x.shape[:-1], self.base.out_features)
        if groups is not None:
            for lang, start, end in groups:
                out = y[start:end].view(-1, y.shape[-1])
                xs = x[start:end].reshape(-1, x.shape[-1])
                w = weights[lang].t()
                torch.addmm(bias, xs, w, out=out) if bias is not None else torch.mm(xs, w, out=out)
            return y
        for lang in torch.unique(route).tolist():
            idx = (route == lang).nonzero().squeeze(1)
            y[idx] = nn.functional.linear(x[idx], weights[lang], bias)
        return y

    def _forward_grouped(self, x: torch.Tensor, weights: torch.Tensor, bias: torch.Tensor | None) -> torch.Tensor:
        # Rows sorted by language: one grouped matmul over every language's run, whose bounds stay on
        # the device. No host sync and one kernel where the loop above makes one per language (on a
        # GPU each waits on the host), so it also runs inside a compiled graph (CUDA graphs).
        y = nn.functional.grouped_mm(x.reshape(-1, x.shape[-1]), weights.transpose(1, 2), offs=self.offs[0])
        y = y.view(*x.shape[:-1], y.shape[-1])
        return y if bias is None else y + bias

    def _merged_for(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None, torch.Tensor]:
        """The merged weights, bias and x in the dtype this call computes in (autocast's, else x's).
        out= matmuls do not autocast, and casting the weights anew on every call would cost a
        kernel per language per layer: the cast is made once and kept until unmerge."""
        dtype = compute_dtype(x.device, x.dtype)
        return *self._merged_at(dtype), x.to(dtype)

    def _merged_at(self, dtype: torch.dtype) -> tuple[torch.Tensor, torch.Tensor | None]:
        if self.merged_cast is None or self.merged_cast[0].dtype != dtype:
            bias = self.base.bias
            self.merged_cast = (self.merged_weights.to(dtype), None if bias is None else bias.to(dtype))
        return self.merged_cast

    @torch.no_grad()
    def merge(self, routed: bool = False, dtype: torch.dtype | None = None) -> None:
        """Fold the shared adapter into the frozen weight; with `routed`, keep a merged copy of
        the weight per language for routed layers (made on the module's device: merge after moving
        it), and, given the `dtype` it will compute in, its cast copy now rather than inside the first
        call (a compiled forward would record the cast and compile again on its next call)."""
        if not self.routed and not self.merged:
            self.base.weight += self.delta_weight()[0].to(self.base.weight.dtype)
            self.merged = True
        elif self.routed and routed and self.merged_weights is None:
            self.merged_weights = self.base.weight[None] + self.delta_weight().to(self.base.weight.dtype)
        if self.merged_weights is not None and dtype is not None:
            self._merged_at(dtype)

    @torch.no_grad()
    def merge_fused(self, weights: torch.Tensor) -> None:
        """Fold sum_a weights[a] * scaling * B[a] A[a] into the frozen weight: a fused layer whose
        fusion weights (shape = (n_adapters,)) are fixed after training costs what the bare layer does."""
        if not self.merged:
            self.base.weight += self._fused_delta(weights).to(self.base.weight.dtype)
            self.fused_weights, self.merged = weights.detach().clone(), True

    def _fused_delta(self, weights: torch.Tensor) -> torch.Tensor:
        return torch.einsum("a,aoi->oi", weights.to(self.lora_A.dtype), self.delta_weight())

    @torch.no_grad()
    def unmerge(self) -> None:
        if self.merged and self.fused_weights is not None:
            self.base.weight -= self._fused_delta(self.fused_weights).to(self.base.weight.dtype)
            self.fused_weights, self.merged = None, False
        elif self.merged:
            self.base.weight -= self.delta_weight()[0].to(self.base.weight.dtype)
            self.merged = False
        self.merged_weights, self.merged_cast = None, None


def compute_dtype(device: torch.device, otherwise: torch.dtype) -> torch.dtype:
    """The dtype a matmul on `device` computes in here: autocast's where it is on, else `otherwise`."""
    return torch.get_autocast_dtype(device.type) if torch.is_autocast_enabled(device.type) else otherwise


def _per_row(t: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """A per-utterance route or weights for the rows of x: beam search repeats each utterance's
    row once per beam (consecutively, as transformers' generate does)."""
    return t if t.shape[0] == x.shape[0] else t.repeat_interleave(x.shape[0] // t.shape[0], dim=0)


def layer_of(name: str) -> int:
    """The encoder layer (0-based) of a LoRA module from its qualified name (`...layers.3.fc1`)."""
    return int(re.search(r"layers\.(\d+)\.", name).group(1))


def _get(module: nn.Module, path: str) -> nn.Module | None:
    for name in path.split("."):
        module = getattr(module, name, None)
        if module is None:
            return None
    return module


def inject_lora(
    layer: nn.Module, target_paths: dict[str, str], n_adapters: int, cfg: LoRAConfig, where: str
) -> list[LoRALinear]:
    """Replace each target nn.Linear of `layer` with a LoRALinear wrapping it."""
    wrapped = []
    for target in cfg.targets:
        if target not in LORA_TARGETS:
            raise HloraError(f"unknown LoRA target '{target}': choose from {', '.join(LORA_TARGETS)}")
        path = target_paths.get(target)
        base = _get(layer, path) if path else None
        if not isinstance(base, nn.Linear):
            raise HloraError(
                f"LoRA target '{target}' ({path}) is not a linear layer of {where}: "
                f"choose from {', '.join(target_paths)}"
            )
        parent_path, _, name = path.rpartition(".")
        parent = _get(layer, parent_path) if parent_path else layer
        module = LoRALinear(base, n_adapters, cfg)
        setattr(parent, name, module)
        wrapped.append(module)
    return wrapped


def contiguous_groups(route: torch.Tensor) -> list[tuple[int, int, int]] | None:
    """(adapter, start, end) for each run of equal adapters in `route`, or None when some adapter
    occurs in more than one run (the batch is not grouped by language)."""
    langs, counts = torch.unique_consecutive(route, return_counts=True)
    langs, ends = langs.tolist(), counts.cumsum(0).tolist()
    if len(set(langs)) != len(langs):
        return None
    return [(lang, end - n, end) for lang, end, n in zip(langs, ends, counts.tolist(), strict=True)]


def grouped_routing(device: torch.device, dtype: torch.dtype) -> bool:
    """Whether merged routed layers run as one grouped matmul (torch's grouped_mm, made for mixtures
    of experts) on `device` at `dtype`: bf16 only (all its compiled form takes), on a CPU or on a
    NVIDIA GPU with torch's fused kernel (compute capability 9 or 10). Elsewhere (ROCm too) torch's
    fallback copies the group bounds to the host, as the per-language loop does."""
    if dtype != torch.bfloat16 or not hasattr(nn.functional, "grouped_mm"):
        return False
    if device.type == "cuda":
        if torch.version.hip is not None:
            return False
        index = device.index if device.index is not None else torch.cuda.current_device()
        if index not in _FUSED_GROUPED_MM:
            _FUSED_GROUPED_MM[index] = torch.cuda.get_device_capability(index)[0] in (9, 10)
        return _FUSED_GROUPED_MM[index]
    return device.type == "cpu"


# CUDA device index -> whether torch has its fused grouped matmul there. Asked once, eagerly (the
# decoder asks before it compiles): a compiled graph then reads this dict, not the driver.
_FUSED_GROUPED_MM: dict[int, bool] = {}


def group_offsets(route: torch.Tensor, n_adapters: int, frames: int) -> torch.Tensor:
    """For a batch sorted by adapter, flattened to (batch x frames) rows: the end row of each
    adapter's run, shape = (n_adapters,), int32 (grouped_mm's `offs`). Worked out on the device,
    in int32 throughout (no cast), from a one-hot count (a static shape, unlike bincount's)."""
    one_hot = route[:, None] == torch.arange(n_adapters, device=route.device)
    return one_hot.sum(0, dtype=torch.int32).cumsum(0, dtype=torch.int32) * frames


def route_picks(route: torch.Tensor, modules: list[LoRALinear]) -> tuple[torch.Tensor, torch.Tensor | None]:
    """The one-hot (batch, n_adapters) of `route` in the dtype the matmuls run in, and, where the
    modules share one scaling that this dtype holds exactly (2.0: alpha = 2 x rank), the one-hot
    times it: the scaling then rides in the pick of B and costs no multiply, forward or backward.
    A scaling the dtype would round (1/3 in bf16) stays a separate, exact factor."""
    first = modules[0]
    dtype = compute_dtype(route.device, torch.get_default_dtype())
    picks = (route[:, None] == torch.arange(first.n_adapters, device=route.device)).to(dtype)
    if any(m.scaling != first.scaling for m in modules) or dtype in first.rounds_scaling:
        return picks, None
    return picks, picks * first.scaling


def _rounding(value: float) -> frozenset[torch.dtype]:
    """The half dtypes that do not hold `value` as an fp32 multiply applies it (a matmul's alpha is
    applied at fp32): folded into an operand of theirs, it would be rounded. Worked out once, when a
    module is made, so that a compiled forward asks a set, not a tensor."""
    at_fp32 = torch.tensor(value, dtype=torch.float32)
    return frozenset(dt for dt in (torch.bfloat16, torch.float16) if at_fp32.to(dt).float() != at_fp32)


@contextmanager
def routing(
    modules: list[LoRALinear], route: torch.Tensor, weights: torch.Tensor | None = None, frames: int | None = None
) -> Iterator[None]:
    """Give the routed LoRA modules of one layer their per-sample adapter (`route`, shape = (batch,))
    or, for soft routing, their per-sample adapter weights (shape = (batch, n_adapters)) for one forward.
    `frames`: the caller sorted the batch by adapter (the model core does) and each module's input
    has this many frames an utterance, so merged layers may run one grouped matmul (`grouped_routing`),
    their offsets worked out here once for the layer."""
    merged = weights is None and any(m.merged_weights is not None for m in modules)
    offs = groups = picks = None
    if merged and frames is not None and all(m.merged_weights is not None for m in modules):
        if groupable(modules, route.device, compute_dtype(route.device, modules[0].base.weight.dtype)):
            offs = group_offsets(route, modules[0].n_adapters, frames), frames
    if merged and offs is None:
        groups = contiguous_groups(route)
    if weights is None and route is not None and not merged and modules:  # once for the layer's modules
        picks = route_picks(route, modules)
    for m in modules:
        m.route, m.groups, m.offs, m.weights, m.picks = route, groups, offs, weights, picks
    try:
        yield
    finally:
        for m in modules:
            m.route, m.groups, m.offs, m.weights, m.picks = None, None, None, None, None


def groupable(modules: list[LoRALinear], device: torch.device, dtype: torch.dtype) -> bool:
    """Whether merged, `modules` run as grouped matmuls on `device` at `dtype`: torch has the
    kernel there (`grouped_routing`) and their rows are a multiple of 16 bytes (its alignment)."""
    return grouped_routing(device, dtype) and all(
        m.base.in_features % 8 == 0 and m.base.out_features % 8 == 0 for m in modules
    )
