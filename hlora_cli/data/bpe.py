"""BPE units with sentencepiece, as ESPnet recipes (the HLoRA paper's) train CTC on.

A model is trained on normalized lines and kept serialized (base64) inside vocab.json and every
model directory's config.json, so training and decoding need no other file. Its pieces enter a
CTC inventory after the specials; the bare word-start piece `▁` is our word-boundary token, and
decoding needs only the pieces (`▁` starts a word)."""

from __future__ import annotations

import base64
import io
from functools import lru_cache

from hlora_cli.errors import HloraError

WORD_START = "▁"


def _spm():
    try:
        import sentencepiece
    except ImportError as e:  # a declared dependency; say so rather than fail deep inside
        raise HloraError("BPE units need the sentencepiece package: pip install sentencepiece") from e
    return sentencepiece


def train_bpe(lines: list[str], size: int, symbols: list[str] | None = None) -> str:
    """A BPE model of at most `size` pieces over `lines` (identity normalization: the text is
    already normalized), serialized as base64. `symbols` (language-prefix tokens) stay whole.
    Every character is a piece, so a `size` below the character count is raised to it."""
    if size < 2:
        raise HloraError(f"--bpe-size {size}: need at least 2 pieces")
    lines = [line for line in lines if line.strip()]
    if not lines:
        raise HloraError("no text to train a BPE model on")
    chars = {c for line in lines for c in line if not c.isspace()}
    size = max(size, len(chars) + len(symbols or []) + 2)  # + the unknown and the word start
    buf = io.BytesIO()
    _spm().SentencePieceTrainer.train(
        sentence_iterator=iter(lines),
        model_writer=buf,
        vocab_size=size,
        model_type="bpe",
        character_coverage=1.0,
        normalization_rule_name="identity",
        user_defined_symbols=symbols or [],
        unk_id=0,
        bos_id=-1,
        eos_id=-1,
        hard_vocab_limit=False,  # a small corpus may not have `size` merges
        minloglevel=2,
    )
    return base64.b64encode(buf.getvalue()).decode("ascii")


@lru_cache(maxsize=64)
def _processor(model_b64: str):
    """The sentencepiece model serialized in a vocab.json; one that does not parse (a hand edit, a
    file cut short) is an error, not a crash inside sentencepiece."""
    try:
        return _spm().SentencePieceProcessor(model_proto=base64.b64decode(model_b64, validate=True))
    except (ValueError, TypeError, RuntimeError) as e:  # binascii.Error is a ValueError
        raise HloraError(f"a BPE model in the vocabulary is not a sentencepiece model ({e})") from e


def pieces(model_b64: str, symbols: list[str] | None = None) -> list[str]:
    """The model's pieces, without its unknown and control symbols, the user-defined `symbols`
    (the inventory lists those itself) and the bare `▁` (the word-boundary token stands for it)."""
    sp = _processor(model_b64)
    skip = {WORD_START, *(symbols or [])}
    return [
        sp.id_to_piece(i)
        for i in range(sp.get_piece_size())
        if not (sp.is_unknown(i) or sp.is_control(i) or sp.is_unused(i)) and sp.id_to_piece(i) not in skip
    ]


def encode(model_b64: str, text: str) -> list[str]:
    """Pieces of one normalized line (`▁` alone returned as is; the caller maps it)."""
    return _processor(model_b64).encode(text, out_type=str)
