"""The joint objective: CTC on the routed language's head + lid_weight x cross-entropy on the LID head."""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from hlora_cli.model.hlora import ModelOutput


@dataclass
class LossParts:
    total: torch.Tensor
    ctc: torch.Tensor
    lid: torch.Tensor
    lid_correct: int
    n_ctc: int  # utterances that contributed CTC loss


def joint_loss(
    out: ModelOutput, langs: torch.Tensor, targets: list[list[int]], vocab_sizes: list[int], lid_weight: float
) -> LossParts:
    """CTC per head group, on each head's own columns (never the -inf padding); utterances routed
    to another language's LoRA/head (predicted routing) contribute no CTC loss. Mean over
    utterances of per-utterance loss / target length."""
    device = out.log_probs.device
    langs = langs.to(device)
    ctc_sum = torch.zeros((), device=device)
    n_ctc = 0
    shared_head = len(vocab_sizes) == 1  # the baseline: routing does not choose its head
    routed_right = torch.ones_like(langs, dtype=torch.bool) if shared_head else out.langs == langs
    heads = torch.zeros_like(out.langs) if shared_head else out.langs
    for head in torch.unique(heads[routed_right]).tolist():
        idx = ((heads == head) & routed_right).nonzero().squeeze(1)
        lp = out.log_probs[idx][:, :, : vocab_sizes[head]].transpose(0, 1)  # (T, B, V)
        tgt = [targets[i] for i in idx.tolist()]
        flat = torch.tensor([t for seq in tgt for t in seq], dtype=torch.long, device=device)
        tgt_len = torch.tensor([len(seq) for seq in tgt], dtype=torch.long, device=device)
        loss = F.ctc_loss(lp, flat, out.out_lengths[idx], tgt_len, blank=0, reduction="none", zero_infinity=True)
        ctc_sum = ctc_sum + (loss / tgt_len.clamp_min(1)).sum()
        n_ctc += len(idx)
    ctc = ctc_sum / max(1, n_ctc)
    if out.lang_logprobs is not None:
        lid = F.nll_loss(out.lang_logprobs, langs)
        lid_correct = int((out.lang_logprobs.argmax(-1) == langs).sum())
    else:
        lid, lid_correct = torch.zeros((), device=device), 0
    return LossParts(ctc + lid_weight * lid, ctc, lid, lid_correct, n_ctc)
