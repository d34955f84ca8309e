"""The whole Whisper as a backbone (seq2seq): its encoder, run layer by layer as every backbone is,
plus its decoder, which reads the encoder's output through cross-attention and writes Whisper's own
tokens after the prefix <|startoftranscript|><|lang|><|transcribe|><|notimestamps|>.

The language token is set per utterance from the routing (never Whisper's own language detection),
and the decoder layers carry LoRA too: shared, or each language its own (routed) as the encoder's
top layers. With `encoder_input` "true-length" padded frames are masked in cross-attention as
well as in the encoder (transformers' Whisper decoder takes no encoder mask: a pre-hook on each
cross-attention adds it)."""

from __future__ import annotations

import zlib
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import replace

import torch
from torch import nn

from hlora_cli.model.backbone import WhisperSeq2SeqBackbone
from hlora_cli.model.config import LoRAConfig
from hlora_cli.model.lora import LoRALinear, inject_lora, routing

# LoRA targets in a decoder layer: attention targets in both self- and cross-attention.
SELF_ATTENTION = {
    "q": "self_attn.q_proj",
    "k": "self_attn.k_proj",
    "v": "self_attn.v_proj",
    "out": "self_attn.out_proj",
}
CROSS_ATTENTION = {
    "q": "encoder_attn.q_proj",
    "k": "encoder_attn.k_proj",
    "v": "encoder_attn.v_proj",
    "out": "encoder_attn.out_proj",
}
FEED_FORWARD = {"ff_in": "fc1", "ff_out": "fc2"}
IGNORE = -100  # label of a position that has no loss (the prefix, padding)
# <|startoftranscript|><|lang|><|transcribe|><|notimestamps|>: what every decoder pass starts with
PREFIX_TOKENS = 4
# Generation budget: a Whisper token is rarely under a twelfth of a second of speech, and a
# repetition loop (Whisper on a synthetic voice) otherwise runs to the decoder's 448 positions.
TOKENS_PER_SECOND = 12.0


# openai/whisper's test for a repetition loop (its compression_ratio_threshold): text that zlib
# shrinks more than 2.4 times repeats itself. Such a hypothesis is generated once more with repeated
# n-grams forbidden (`LOOP_NGRAM` tokens; whisper samples at a higher temperature instead, which
# would make decoding depend on a seed). Measured on real Korean: one looping utterance of 60 cost
# a fine-tuned expert 3.4 CER points.
LOOP_RATIO = 2.4
LOOP_NGRAM = 4


def looping(text: str) -> bool:
    """Whether `text` is a repetition loop by whisper's measure (compression ratio > LOOP_RATIO)."""
    data = text.encode("utf-8")
    return bool(data) and len(data) / len(zlib.compress(data)) > LOOP_RATIO


def retry_loops(
    texts: list[str], loop_ngram: int, no_repeat_ngram: int, regenerate: Callable[[list[int], int], list[str]]
) -> list[str]:
    """`texts` with those that loop generated again: `regenerate(rows, n)` writes those rows anew
    with repeated n-grams of `loop_ngram` tokens forbidden. Nothing is redone where `loop_ngram` is 0
    or the first generation already forbade repeated n-grams (`no_repeat_ngram`)."""
    loops = [n for n, t in enumerate(texts) if looping(t)] if loop_ngram and not no_repeat_ngram else []
    if not loops:
        return texts
    again = dict(zip(loops, regenerate(loops, loop_ngram), strict=True))
    return [again.get(n, t) for n, t in enumerate(texts)]


def token_budget(seconds: float, per_second: float = TOKENS_PER_SECOND) -> int:
    """The most tokens an utterance of `seconds` may be given: per_second x seconds + 10."""
    return int(per_second * seconds) + 10


def text_tokens(ids: list[int], special: set[int], budget: int | None) -> list[int]:
    """One generated row's text: special tokens (prefix, end) dropped, cut to the utterance's own
    budget (a batch is generated to its longest budget)."""
    text = [t for t in ids if t not in special]
    return text if budget is None else text[:budget]


def inject_decoder_lora(layer: nn.Module, n_adapters: int, cfg: LoRAConfig, where: str) -> list[LoRALinear]:
    """LoRA in one decoder layer: every selected attention target in self- and cross-attention,
    and the feed-forward targets."""
    attn = [t for t in cfg.targets if t in SELF_ATTENTION]
    ff = [t for t in cfg.targets if t in FEED_FORWARD]
    wrapped = []
    if attn or ff:
        own = {**SELF_ATTENTION, **FEED_FORWARD}
        wrapped += inject_lora(layer, own, n_adapters, replace(cfg, targets=attn + ff), where)
    if attn:
        cross = replace(cfg, targets=attn)
        wrapped += inject_lora(layer, CROSS_ATTENTION, n_adapters, cross, where + " cross-attention")
    return wrapped


def teacher_forcing(prefix: torch.Tensor, targets: list[list[int]], eot: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Decoder inputs and labels of a batch: input = prefix + text, label = text + end token,
    the prefix's positions (but its last, which predicts the first text token) and padding
    labelled IGNORE. Returns (input_ids, labels), each shape = (batch, PREFIX_TOKENS + longest text)."""
    n_prefix = prefix.shape[1]
    longest = max(len(t) for t in targets) + 1
    inputs = torch.full((len(targets), n_prefix - 1 + longest), eot, dtype=torch.long)
    labels = torch.full_like(inputs, IGNORE)
    for b, t in enumerate(targets):
        seq = torch.tensor(t + [eot], dtype=torch.long)
        inputs[b, :n_prefix] = prefix[b]
        inputs[b, n_prefix : n_prefix + len(t)] = seq[:-1]
        labels[b, n_prefix - 1 : n_prefix - 1 + len(seq)] = seq
    return inputs, labels


@contextmanager
def quiet_generation() -> Iterator[None]:
    """transformers' per-call notes on max_length, masks and generation configs are not the user's
    concern: silenced while generating, restored after."""
    from transformers.utils import logging as hf_logging

    verbosity = hf_logging.get_verbosity()
    hf_logging.set_verbosity_error()
    try:
        yield
    finally:
        hf_logging.set_verbosity(verbosity)


def generate(
    model,
    out,
    num_beams: int = 1,
    no_repeat_ngram: int = 0,
    max_new_tokens: int | list[int] | None = None,
) -> list[list[int]]:
    """Token ids (text only, no prefix or end token) of each utterance, through transformers'
    `generate` on the encoder output `out.encoder_out` (a seq2seq ModelOutput): the decoder forced
    to each utterance's routed language (`out.lang_ids`), its LoRA routed the same way, greedy or
    beam search, timestamps off. Utterances are generated grouped by language (contiguous runs:
    one matmul per language in the merged routed layers); `max_new_tokens` caps each utterance
    (a list: per utterance; a batch takes its longest)."""
    from transformers.modeling_outputs import BaseModelOutput

    bb: WhisperSeq2SeqBackbone = model.backbone
    route = out.lang_ids
    order = torch.argsort(route, stable=True)
    enc, lengths, route = out.encoder_out[order], out.out_lengths[order], route[order]
    weights = out.route_weights[order] if out.route_weights is not None else None
    codes = [model.languages[i] for i in route.tolist()]
    caps = max_new_tokens if isinstance(max_new_tokens, list) else [max_new_tokens] * len(codes)
    caps = [caps[i] for i in order.tolist()]
    limit = bb.max_target_positions - PREFIX_TOKENS  # the prefix's tokens count against the decoder's positions
    cap = min(limit, max(c if c is not None else limit for c in caps))
    with quiet_generation(), bb.masked(lengths, enc.shape[1]), routing(model.readout.decoder_lora, route, weights):
        seqs = bb.generator.generate(
            encoder_outputs=BaseModelOutput(last_hidden_state=enc),
            language=codes,  # the forced prefix: <|startoftranscript|><|lang|><|transcribe|><|notimestamps|>
            task="transcribe",
            num_beams=num_beams,
            do_sample=False,
            no_repeat_ngram_size=no_repeat_ngram,
            max_new_tokens=cap,
            return_timestamps=False,
        )
    special = set(bb.tokenizer.all_special_ids)
    result: list[list[int]] = [[] for _ in codes]
    for pos, i in enumerate(order.tolist()):
        result[i] = text_tokens(seqs[pos].tolist(), special, caps[pos])
    return result
