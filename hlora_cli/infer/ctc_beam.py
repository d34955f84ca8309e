"""CTC prefix beam search with pyctcdecode, optionally fused with a KenLM n-gram per language: the
decoder `hlora decode --decoder beam` and `--lm` use (greedy decoding is model/ctc_decoding.py)."""

from __future__ import annotations

import numpy as np
import regex

from hlora_cli.data.bpe import WORD_START
from hlora_cli.data.vocab import BLANK, UNK, WORD
from hlora_cli.infer.lm import lm_unigrams
from hlora_cli.model.ctc_decoding import Hypothesis, output_text
from text_normalization.registry import get_normalizer

UNK_MARK = "⁇"  # the beam decoder's label for <unk>, removed from its output


class BeamDecoder:
    """pyctcdecode beam search over one head's inventory, with an optional KenLM (ARPA or binary).

    In CER languages the LM's words are single characters (as in the normalized text it is built
    from), so each character of a space-less script is presented as a word start. A BPE inventory
    (pieces starting with `▁`) runs pyctcdecode in its BPE mode, which joins pieces into words
    before they reach the LM: the LM scores words, never pieces."""

    def __init__(
        self,
        vocab: list[str],
        lang: str,
        lm_path: str | None = None,
        beam_width: int = 32,
        alpha: float = 0.5,
        beta: float = 1.0,
    ) -> None:
        from pyctcdecode import build_ctcdecoder

        self.lang, self.beam_width = lang, beam_width
        is_bpe = any(t.startswith(WORD_START) for t in vocab)
        split = get_normalizer(lang).split_characters or is_bpe  # pyctcdecode's `▁` word starts
        labels = []
        for i, t in enumerate(vocab):
            if t == BLANK:
                labels.append("")
            elif t == UNK:
                labels.append(UNK_MARK)  # dropped from the output, as greedy drops <unk>
            elif t == WORD:
                labels.append("▁" if split else " ")
            elif t.startswith("<") and len(t) > 2:  # language-prefix tokens of the shared head
                labels.append(f"▁<p{i}>" if split else f"<p{i}>")
            elif t.startswith(WORD_START):
                labels.append(t)
            else:
                char_word = get_normalizer(lang).split_characters and not t.isascii()
                labels.append(f"▁{t}" if char_word else t)
        unigrams = lm_unigrams(lm_path) if lm_path else None
        self.decoder = build_ctcdecoder(labels, kenlm_model_path=lm_path, unigrams=unigrams, alpha=alpha, beta=beta)

    def __call__(self, log_probs: np.ndarray, fps: float) -> Hypothesis:
        beam = self.decoder.decode_beams(log_probs, beam_width=self.beam_width)[0]
        text, frames = beam[0], beam[2]
        words: list[tuple[str, float, float]] = []
        for w, (a, b) in frames:
            w = w.replace(UNK_MARK, "")
            if w and not w.startswith("<p"):
                words += self._as_greedy_words(w, a / fps, b / fps)
        text = " ".join(w.replace(UNK_MARK, "") for w in text.split() if not w.startswith("<p"))
        return Hypothesis(output_text(text, self.lang), words)

    def _as_greedy_words(self, word: str, start: float, end: float) -> list[tuple[str, float, float]]:
        """Words as greedy decoding makes them: in CER languages each character of a space-less
        script is a word and a Latin run after it another (pyctcdecode joins them: `語a`); their
        times split the beam word's span by length."""
        if not get_normalizer(self.lang).split_characters:
            return [(word, start, end)]
        pieces = regex.findall(r"[\x00-\x7f]+|\X", word)
        out, t, step = [], start, (end - start) / max(1, len(word))
        for piece in pieces:
            out.append((piece, t, t + step * len(piece)))
            t += step * len(piece)
        return out
