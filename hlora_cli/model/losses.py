"""The joint objective: CTC on the routed language's head (or, soft-routed, every head weighted by the
LID posterior) + lid_weight x cross-entropy on the LID head."""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from hlora_cli.model.heads import valid_mask
from hlora_cli.model.output import ModelOutput


@dataclass
class LossParts:
    total: torch.Tensor
    asr: torch.Tensor  # the recognition loss: CTC, or (seq2seq) the decoder's cross-entropy
    lid: torch.Tensor
    lid_correct: int
    kd_cos: torch.Tensor | None = None  # distillation only: mean cosine distance over layers
    kd_js: torch.Tensor | None = None  # distillation only: Jensen-Shannon of the CTC posteriors


def _ctc(log_probs: torch.Tensor, lengths: torch.Tensor, targets: list[list[int]]) -> torch.Tensor:
    """Per-utterance CTC loss / target length; log_probs : shape = (batch, time, vocab)."""
    device = log_probs.device
    flat = torch.tensor([t for seq in targets for t in seq], dtype=torch.long, device=device)
    tgt_len = torch.tensor([len(seq) for seq in targets], dtype=torch.long, device=device)
    loss = F.ctc_loss(log_probs.transpose(0, 1), flat, lengths, tgt_len, blank=0, reduction="none", zero_infinity=True)
    return loss / tgt_len.clamp_min(1)


def soft_ctc(out: ModelOutput, targets_by_lang: list[list[list[int]]]) -> torch.Tensor:
    """Soft routing: sum over heads l of route_weights[:, l] x CTC on head l (the transcript in l's
    inventory), so the ASR loss also trains the LID head that sets the weights."""
    per_utt = sum(
        out.route_weights[:, lang] * _ctc(lp, out.out_lengths, [t[lang] for t in targets_by_lang])
        for lang, lp in enumerate(out.head_ctc_logprobs)
    )
    return per_utt.mean()


def joint_loss(
    out: ModelOutput,
    langs: torch.Tensor,
    targets: list[list[int]],
    vocab_sizes: list[int],
    lid_weight: float,
    targets_by_lang: list[list[list[int]]] | None = None,
) -> LossParts:
    """CTC per head group, on each head's own columns (never the -inf padding); utterances routed
    to another language's LoRA/head (predicted routing) contribute no CTC loss. Mean over
    utterances of per-utterance loss / target length. With soft routing (`out.head_ctc_logprobs`),
    the posterior-weighted CTC of every head (`targets_by_lang[b][l]`: utterance b in head l's
    inventory). The LID term is skipped at lid_weight 0 (ctc: the language comes from the CTC
    targets' prefix token)."""
    device = out.ctc_logprobs.device
    langs = langs.to(device)
    lid_correct = int((out.lid_logprobs.argmax(-1) == langs).sum()) if out.lid_logprobs is not None else 0
    if lid_weight > 0 and out.lid_logprobs is not None:
        lid = F.nll_loss(out.lid_logprobs, langs)
    else:
        lid = torch.zeros((), device=device)
    if out.head_ctc_logprobs is not None:
        if targets_by_lang is None:
            raise ValueError("soft routing needs every utterance's targets in every head's inventory")
        ctc = soft_ctc(out, targets_by_lang)
        return LossParts(ctc + lid_weight * lid, ctc, lid, lid_correct)
    ctc_sum = torch.zeros((), device=device)
    n_ctc = 0
    shared_head = len(vocab_sizes) == 1  # the baseline: routing does not choose its head
    routed_right = torch.ones_like(langs, dtype=torch.bool) if shared_head else out.lang_ids == langs
    heads = torch.zeros_like(out.lang_ids) if shared_head else out.lang_ids
    for head in torch.unique(heads[routed_right]).tolist():
        idx = ((heads == head) & routed_right).nonzero().squeeze(1)
        lp = out.ctc_logprobs[idx][:, :, : vocab_sizes[head]]
        ctc_sum = ctc_sum + _ctc(lp, out.out_lengths[idx], [targets[i] for i in idx.tolist()]).sum()
        n_ctc += len(idx)
    ctc = ctc_sum / max(1, n_ctc)
    return LossParts(ctc + lid_weight * lid, ctc, lid, lid_correct)


def _frame_mean(x: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
    """Mean over each utterance's valid frames; x : shape = (batch, time). Returns shape = (batch,)."""
    return (x * valid_mask(lengths, x.shape[1])).sum(1) / lengths.clamp_min(1)


def layer_cosine(student: list[torch.Tensor], teacher: list[torch.Tensor], lengths: torch.Tensor) -> torch.Tensor:
    """1 - cosine similarity of student and teacher hidden states, per frame, averaged over valid
    frames and layers."""
    per_layer = [
        _frame_mean(1 - F.cosine_similarity(s.float(), t.float(), dim=-1), lengths).mean()
        for s, t in zip(student, teacher, strict=True)
    ]
    return torch.stack(per_layer).mean()


def posterior_js(
    student_lp: torch.Tensor,
    teacher_lp: torch.Tensor,
    langs: torch.Tensor,
    lengths: torch.Tensor,
    token_maps: list[torch.Tensor],
) -> torch.Tensor:
    """Jensen-Shannon divergence per frame between each utterance's expert posterior (its own
    inventory) and the student's posterior over the same tokens (the student's columns of those
    tokens, renormalised), averaged over valid frames and utterances."""
    per_utt = torch.zeros(len(langs), device=student_lp.device)
    for lang in torch.unique(langs).tolist():
        idx = (langs == lang).nonzero().squeeze(1)
        cols = token_maps[lang]
        p_log = teacher_lp[idx][:, :, : len(cols)].float()
        q_log = student_lp[idx][:, :, cols].float()
        q_log = q_log - torch.logsumexp(q_log, dim=-1, keepdim=True)
        per_utt[idx] = _frame_mean(js_divergence(p_log, q_log), lengths[idx])
    return per_utt.mean()


def distill_loss(
    parts: LossParts,
    student: ModelOutput,
    teacher: ModelOutput,
    langs: torch.Tensor,
    token_maps: list[torch.Tensor],
    cos_weight: float,
    js_weight: float,
) -> LossParts:
    """The student's objective: its CTC (+ LID) + cos_weight x layer-wise cosine distance to the
    expert of each utterance's language + js_weight x JS between their CTC posteriors."""
    langs = langs.to(student.ctc_logprobs.device)
    total = parts.total
    cos = torch.zeros((), device=langs.device)
    if student.hidden is not None and teacher.hidden is not None:
        cos = layer_cosine(student.hidden, teacher.hidden, student.out_lengths)
        if cos_weight > 0:  # a weight of 0 adds nothing at all: plain CTC training of the student
            total = total + cos_weight * cos
    js = posterior_js(student.ctc_logprobs, teacher.ctc_logprobs, langs, student.out_lengths, token_maps)
    if js_weight > 0:
        total = total + js_weight * js
    return LossParts(total, parts.asr, parts.lid, parts.lid_correct, cos.detach(), js.detach())


def seq2seq_loss(
    logits: torch.Tensor,
    labels: torch.Tensor,
    out: ModelOutput,
    langs: torch.Tensor,
    lid_weight: float,
) -> LossParts:
    """seq2seq: the decoder's cross-entropy per utterance (mean over its text tokens and end token),
    averaged over the utterances routed to their own language (a misrouted one was forced to
    another language's token: its text is no target there) + lid_weight x LID cross-entropy.
    logits : shape = (batch, tokens, vocab); labels : shape = (batch, tokens), -100 where no loss."""
    device = logits.device
    langs, labels = langs.to(device), labels.to(device)
    lid_correct = int((out.lid_logprobs.argmax(-1) == langs).sum()) if out.lid_logprobs is not None else 0
    has_lid = lid_weight > 0 and out.lid_logprobs is not None
    lid = F.nll_loss(out.lid_logprobs, langs) if has_lid else torch.zeros((), device=device)
    per_token = F.cross_entropy(logits.float().transpose(1, 2), labels, ignore_index=-100, reduction="none")
    valid = labels != -100
    per_utt = (per_token * valid).sum(1) / valid.sum(1).clamp_min(1)
    right = out.lang_ids.to(device) == langs
    ce = (per_utt * right).sum() / right.sum().clamp_min(1)
    return LossParts(ce + lid_weight * lid, ce, lid, lid_correct)


def js_divergence(p_log: torch.Tensor, q_log: torch.Tensor) -> torch.Tensor:
    """Jensen-Shannon divergence of two distributions given as log-probabilities over the last
    dimension, per position. A token one side gives exactly 0 adds 0: clamping its -inf keeps
    0 x inf (and NaN gradients) out."""
    m_log = (torch.logaddexp(p_log, q_log) - math.log(2)).clamp_min(-1e4)
    kl_p = (p_log.exp() * (p_log.clamp_min(-1e4) - m_log)).sum(-1)
    kl_q = (q_log.exp() * (q_log.clamp_min(-1e4) - m_log)).sum(-1)
    return 0.5 * (kl_p + kl_q)


def token_js(student: torch.Tensor, teacher: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Jensen-Shannon divergence between the student's and the teacher's decoder token posteriors
    (one vocabulary: Whisper's), at the positions that carry a label, averaged per utterance, then
    over utterances. student, teacher : shape = (batch, tokens, vocab)."""
    js = js_divergence(torch.log_softmax(teacher.float(), -1), torch.log_softmax(student.float(), -1))
    valid = (labels != -100).to(js.device)
    return ((js * valid).sum(1) / valid.sum(1).clamp_min(1)).mean()


def seq2seq_distill_loss(
    parts: LossParts,
    student_states: list[torch.Tensor] | None,
    teacher_states: list[torch.Tensor] | None,
    n_encoder: int,
    enc_lengths: torch.Tensor,
    token_lengths: torch.Tensor,
    student_logits: torch.Tensor,
    teacher_logits: torch.Tensor,
    labels: torch.Tensor,
    cos_weight: float,
    js_weight: float,
) -> LossParts:
    """The seq2seq student's objective: its cross-entropy (+ LID) + cos_weight x cosine distance to
    each utterance's expert, averaged over every encoder layer (valid frames) and every decoder
    layer (valid token positions) + js_weight x JS between their decoder token posteriors."""
    total = parts.total
    cos = torch.zeros((), device=student_logits.device)
    if student_states is not None and teacher_states is not None:
        enc = layer_cosine(student_states[:n_encoder], teacher_states[:n_encoder], enc_lengths)
        dec = layer_cosine(student_states[n_encoder:], teacher_states[n_encoder:], token_lengths)
        n_dec = len(student_states) - n_encoder
        cos = (enc * n_encoder + dec * n_dec) / (n_encoder + n_dec)
        if cos_weight > 0:
            total = total + cos_weight * cos
    js = token_js(student_logits, teacher_logits, labels)
    if js_weight > 0:
        total = total + js_weight * js
    return LossParts(total, parts.asr, parts.lid, parts.lid_correct, cos.detach(), js.detach())
