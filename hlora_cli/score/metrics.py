"""Error counts with jiwer, on normalized text. Character error rate ignores spaces in languages
whose normalized text has a space between every character (ja, ko, th, zh), and counts them
elsewhere (a missed word boundary is an error there)."""

from __future__ import annotations

import jiwer

from text_normalization.registry import get_normalizer


def _chars(text: str, lang: str) -> str:
    return text.replace(" ", "") if get_normalizer(lang).split_characters else text


def char_errors(refs: list[str], hyps: list[str], lang: str) -> tuple[int, int]:
    """(character edits, reference characters) over a list of normalized pairs."""
    refs = [_chars(r, lang) for r in refs]
    hyps = [_chars(h, lang) for h in hyps]
    pairs = [(r, h) for r, h in zip(refs, hyps, strict=True) if r]
    empty_ref_chars = sum(len(h) for r, h in zip(refs, hyps, strict=True) if not r)  # all insertions
    if not pairs:
        return empty_ref_chars, 0
    out = jiwer.process_characters([r for r, _ in pairs], [h for _, h in pairs])
    return out.substitutions + out.deletions + out.insertions + empty_ref_chars, sum(len(r) for r, _ in pairs)
