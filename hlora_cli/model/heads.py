"""The LID head (pooling over valid frames + a small MLP) and the CTC heads (one per language, or
one shared head over the union inventory)."""

from __future__ import annotations

import torch
from torch import nn

import hlora_cli.model.lora as lora
from hlora_cli.errors import HloraError
from hlora_cli.model.config import LID_HEADS, LIDConfig


def valid_mask(lengths: torch.Tensor, n: int) -> torch.Tensor:
    """(B, n) bool: True on the valid frames of each utterance."""
    return torch.arange(n, device=lengths.device)[None, :] < lengths[:, None]


class LIDHead(nn.Module):
    """Language logits from hidden states, over each utterance's valid frames only.

    head "pooled": frames pooled, then a small MLP; pooling "mean" (the mean of the frames) or
    "attentive" (attentive statistics pooling: a learned weight per frame; weighted mean and
    standard deviation concatenated).
    head "frame" (the HLoRA paper's light classifier): a linear layer and softmax per frame, the
    posteriors averaged over the valid frames; returns their log.
    """

    def __init__(self, hidden_size: int, n_languages: int, cfg: LIDConfig) -> None:
        super().__init__()
        if cfg.head not in LID_HEADS:
            raise HloraError(f"unknown LID head '{cfg.head}': choose {' or '.join(LID_HEADS)}")
        if cfg.pooling not in ("mean", "attentive"):
            raise HloraError(f"unknown LID pooling '{cfg.pooling}': choose mean or attentive")
        self.kind, self.pooling = cfg.head, cfg.pooling
        # Normalise each frame first: intermediate encoder states (Whisper's especially) carry a
        # few dimensions of huge magnitude that would swamp a norm applied after pooling.
        self.frame_norm = nn.LayerNorm(hidden_size)
        if cfg.head == "frame":
            self.frame_linear = nn.Linear(hidden_size, n_languages)
            return
        pooled = hidden_size
        if cfg.pooling == "attentive":
            self.attention = nn.Sequential(nn.Linear(hidden_size, cfg.hidden), nn.Tanh(), nn.Linear(cfg.hidden, 1))
            pooled = 2 * hidden_size
        self.mlp = nn.Sequential(nn.Linear(pooled, cfg.hidden), nn.GELU(), nn.Linear(cfg.hidden, n_languages))

    def forward(self, h: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        """h : shape = (batch, time, hidden); returns logits, shape = (batch, n_languages)."""
        valid = valid_mask(lengths, h.shape[1])[..., None]
        h = self.frame_norm(h)
        if self.kind == "frame":
            log_post = torch.log_softmax(self.frame_linear(h).float(), dim=-1).masked_fill(~valid, float("-inf"))
            return torch.logsumexp(log_post, dim=1) - torch.log(lengths.to(log_post.dtype))[:, None]
        if self.pooling == "mean":
            pooled = (h * valid).sum(1) / lengths[:, None].to(h.dtype)
        else:
            scores = self.attention(h).masked_fill(~valid, float("-inf"))
            w = torch.softmax(scores, dim=1)
            mean = (w * h).sum(1)
            var = (w * h * h).sum(1) - mean * mean
            pooled = torch.cat([mean, var.clamp_min(1e-6).sqrt()], dim=-1)
        return self.mlp(pooled)


class CTCHeads(nn.Module):
    """One linear CTC head per language (each its own inventory, blank = 0), or a single shared one.

    Returns log-probabilities padded to the largest inventory with -inf, so a mixed-language batch
    is one tensor; column j of utterance b means token j of the head that utterance used.
    """

    def __init__(self, hidden_size: int, vocab_sizes: list[int]) -> None:
        super().__init__()
        self.vocab_sizes = vocab_sizes
        self.heads = nn.ModuleList(nn.Linear(hidden_size, v) for v in vocab_sizes)
        self.tied_rows: list[torch.Tensor] | None = None  # per head, its tokens' rows in the union (tie_rows)
        # merged (inference): every head in one weight, shape = (heads, width, hidden), its rows past a
        # head's inventory zero, and one bias, shape = (heads, width), -inf there (fp32); `merge`
        self.stacked: tuple[torch.Tensor, torch.Tensor] | None = None

    def forward(self, h: torch.Tensor, route: torch.Tensor, ordered: bool = False) -> torch.Tensor:
        """h : shape = (batch, time, hidden); route : shape = (batch,) head per utterance;
        `ordered`: the batch is sorted by head (the model core sorts it for routed layers).
        Returns log_probs, shape = (batch, time, max vocab size)."""
        if len(self.heads) == 1:
            return torch.log_softmax(self.heads[0](h).float(), dim=-1)
        if ordered and self._grouped(h):
            return self._forward_grouped(h, route)
        if torch.compiler.is_compiling():  # static shapes, no host sync: every head, each row its own
            width = max(self.vocab_sizes)
            every = [nn.functional.pad(lp, (0, width - lp.shape[-1]), value=float("-inf")) for lp in self.every_head(h)]
            return torch.stack(every)[route, torch.arange(h.shape[0], device=h.device)]
        out = h.new_full((*h.shape[:2], max(self.vocab_sizes)), float("-inf"), dtype=torch.float32)
        for lang in torch.unique(route).tolist():
            idx = (route == lang).nonzero().squeeze(1)
            logits = self.heads[lang](h[idx]).float()
            out[idx, :, : self.vocab_sizes[lang]] = torch.log_softmax(logits, dim=-1)
        return out

    def _grouped(self, h: torch.Tensor) -> bool:
        """Whether this inference call reads every head in one grouped matmul (lora.grouped_routing)."""
        if self.stacked is None or torch.is_grad_enabled():  # merged for inference only
            return False
        return lora.grouped_routing(h.device, lora.compute_dtype(h.device, h.dtype)) and h.shape[-1] % 8 == 0

    def _forward_grouped(self, h: torch.Tensor, route: torch.Tensor) -> torch.Tensor:
        # Each utterance's head over its own rows, the run bounds on the device: no host sync, one
        # matmul where the loop makes one per language (and a compiled graph one per head, each
        # over every row). The -inf bias past a head's inventory pads its log-probs as the loop does.
        weight, bias = self.stacked
        dtype = lora.compute_dtype(h.device, h.dtype)
        if weight.dtype != dtype:  # cast once, kept (as the merged LoRA weights are)
            self.stacked = weight, bias = weight.to(dtype), bias
        offs = lora.group_offsets(route, len(self.heads), h.shape[1])
        flat = h.to(dtype).reshape(-1, h.shape[-1])
        logits = nn.functional.grouped_mm(flat, weight.transpose(1, 2), offs=offs).view(*h.shape[:2], -1)
        log_probs = torch.log_softmax(logits.float() + bias[route][:, None, :], dim=-1)
        return log_probs[..., : max(self.vocab_sizes)]

    @torch.no_grad()
    def merge(self, dtype: torch.dtype | None = None) -> None:
        """Stack every head into one weight for inference's grouped read (`stacked`, on the heads'
        device: merge after moving them), cast now to the `dtype` it computes in if given; its width
        rounded up to 8 (the grouped matmul's 16-byte rows)."""
        width = -(-max(self.vocab_sizes) // 8) * 8
        ref = self.heads[0].weight
        weight = ref.new_zeros(len(self.heads), width, ref.shape[1])
        bias = torch.full((len(self.heads), width), float("-inf"), device=ref.device)
        for i, head in enumerate(self.heads):
            weight[i, : head.out_features] = head.weight
            bias[i, : head.out_features] = 0.0 if head.bias is None else head.bias.float()
        self.stacked = weight if dtype is None else weight.to(dtype), bias

    def unmerge(self) -> None:
        self.stacked = None

    def every_head(self, h: torch.Tensor) -> list[torch.Tensor]:
        """Every head's log-probabilities for every utterance (soft-routing training):
        a list over heads of shape = (batch, time, vocab size of that head)."""
        return [torch.log_softmax(head(h).float(), dim=-1) for head in self.heads]

    # --- tied rows: one shared row per symbol while a training begins ----------------------------
    def tie_rows(self, inventories: list[list[str]]) -> None:
        """Tie the heads by symbol: every head that has a token (a letter, the blank, the word
        boundary) gets the same row for it, the first head's, and `sum_tied_grads` keeps the rows
        equal (each gets the sum of their gradients, as one shared parameter would). A language with
        little audio then learns its letters from every language's audio until `untie`; the heads
        stay ordinary per-language heads throughout, so nothing downstream changes."""
        if len(inventories) != len(self.heads) or any(
            len(v) != n for v, n in zip(inventories, self.vocab_sizes, strict=True)
        ):
            raise ValueError("one token inventory per head, each as long as its head")
        union: dict[str, int] = {}
        rows = [torch.tensor([union.setdefault(t, len(union)) for t in v]) for v in inventories]
        self.tied_rows = [r.to(self.heads[0].weight.device) for r in rows]
        with torch.no_grad():
            for name in ("weight", "bias"):
                table = self._union(name, first=True)
                for head, idx in zip(self.heads, self.tied_rows, strict=True):
                    getattr(head, name).copy_(table[idx])

    def sum_tied_grads(self) -> None:
        """After backward: every tied row's gradient becomes the sum over the heads that share it
        (a head its batch did not use gets it too, so the optimizer moves every copy alike)."""
        if self.tied_rows is None:
            return
        for name in ("weight", "bias"):
            table = self._union(name, first=False)
            for head, idx in zip(self.heads, self.tied_rows, strict=True):
                getattr(head, name).grad = table[idx].clone()

    def untie(self) -> None:
        self.tied_rows = None

    def _union(self, name: str, first: bool) -> torch.Tensor:
        """One row per symbol of the union: the first head's parameter `name` (`first`), else the
        sum of the heads' gradients."""
        ref = getattr(self.heads[0], name)
        n = 1 + max(int(r.max()) for r in self.tied_rows)
        table = ref.new_zeros((n, *ref.shape[1:]))
        seen = torch.zeros(n, dtype=torch.bool, device=ref.device)
        for head, idx in zip(self.heads, self.tied_rows, strict=True):
            value = getattr(head, name) if first else getattr(head, name).grad
            if value is None:
                continue
            if first:
                new = ~seen[idx]
                table[idx[new]] = value[new]
                seen[idx] = True
            else:
                table.index_add_(0, idx, value)
        return table
