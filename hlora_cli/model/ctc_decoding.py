"""Greedy CTC decoding (best token per frame, repeats collapsed, blanks removed) with token frames
for word times: what the CTC readout reads in training and `hlora decode` by default (its beam
search with pyctcdecode and KenLM is infer/ctc_beam.py)."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch

from hlora_cli.data.bpe import WORD_START
from hlora_cli.data.vocab import BLANK, UNK, WORD
from text_normalization.registry import get_normalizer


@dataclass
class Hypothesis:
    text: str
    words: list[tuple[str, float, float]] = field(default_factory=list)  # (word, start s, end s)


def output_text(text: str, lang: str) -> str:
    """The text a hypothesis reports, greedy or beam: normalized as references are (character-
    spaced in CER languages), so that output and scoring agree whichever decoder made it."""
    from text_normalization import normalize

    return normalize(text, lang, keep_words=not get_normalizer(lang).split_characters)


def words_from_tokens(tokens: list[tuple[str, int, int]], lang: str, fps: float) -> list[tuple[str, float, float]]:
    """Group (token, first frame, last frame) into words: split at the boundary token and before a
    BPE piece that starts a word (`▁`), and, in languages scored by CER, each character of a
    space-less script is its own word."""
    split = get_normalizer(lang).split_characters
    words: list[list[tuple[str, int, int]]] = [[]]
    for tok in tokens:
        if tok[0] == WORD:
            words.append([])
            continue
        if tok[0].startswith(WORD_START):
            words.append([])
            tok = (tok[0][len(WORD_START) :], tok[1], tok[2])
        if split and not tok[0].isascii():
            words += [[tok], []]
            continue
        words[-1].append(tok)
    return [("".join(t for t, _, _ in w), w[0][1] / fps, (w[-1][2] + 1) / fps) for w in words if w]


def greedy_hypothesis(log_probs: np.ndarray, vocab: list[str], lang: str, fps: float) -> Hypothesis:
    """log_probs : shape = (frames, vocab) of one utterance."""
    from hlora_cli.data.vocab import from_tokens

    best = log_probs.argmax(-1)
    tokens: list[tuple[str, int, int]] = []
    prev = -1
    for t, idx in enumerate(best.tolist()):
        if idx == prev and tokens and idx != 0:
            tokens[-1] = (tokens[-1][0], tokens[-1][1], t)
        elif idx != 0:
            tokens.append((vocab[idx], t, t))
        prev = idx
    tokens = [tok for tok in tokens if tok[0] not in (BLANK, UNK) and not tok[0].startswith("<")]
    text = output_text(from_tokens([t for t, _, _ in tokens], lang), lang)
    return Hypothesis(text, words_from_tokens(tokens, lang, fps))


def emitted_tokens(log_probs: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
    """Tokens greedy CTC decoding emits per utterance (repeats merged, blanks dropped).
    log_probs : shape = (batch, frames, vocab); lengths : shape = (batch,) valid frames."""
    best = log_probs.argmax(-1)
    valid = torch.arange(best.shape[1], device=best.device)[None, :] < lengths[:, None]
    new = torch.ones_like(best, dtype=torch.bool)
    new[:, 1:] = best[:, 1:] != best[:, :-1]
    return ((best != 0) & new & valid).sum(1)
