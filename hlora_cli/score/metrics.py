"""Error rates per language with jiwer, on normalized text (text_normalization), as the MLC-SLM
challenge scores: MER is CER for Japanese, Korean, Thai and Chinese and WER for the others. CER
ignores spaces in those four languages (their normalized text has one between every character)
and counts them elsewhere (a missed word boundary is an error there)."""

from __future__ import annotations

from collections import Counter, defaultdict
from dataclasses import dataclass, field

import jiwer

from hlora_cli.errors import HloraError
from text_normalization import normalize
from text_normalization.registry import base_language, get_normalizer


def _chars(text: str, lang: str) -> str:
    return text.replace(" ", "") if get_normalizer(lang).split_characters else text


def _edits(refs: list[str], hyps: list[str], words: bool) -> tuple[int, int, int, int]:
    """(substitutions, deletions, insertions, reference length); empty references make every
    hypothesis unit an insertion (jiwer does not take empty references)."""
    unit = (lambda s: s.split()) if words else list
    pairs = [(r, h) for r, h in zip(refs, hyps, strict=True) if unit(r)]
    extra = sum(len(unit(h)) for r, h in zip(refs, hyps, strict=True) if not unit(r))
    if not pairs:
        return 0, 0, extra, 0
    out = (jiwer.process_words if words else jiwer.process_characters)([r for r, _ in pairs], [h for _, h in pairs])
    return out.substitutions, out.deletions, out.insertions + extra, sum(len(unit(r)) for r, _ in pairs)


def char_errors(refs: list[str], hyps: list[str], lang: str) -> tuple[int, int]:
    """(character edits, reference characters) over a list of normalized pairs."""
    s, d, i, n = _edits([_chars(r, lang) for r in refs], [_chars(h, lang) for h in hyps], words=False)
    return s + d + i, n


@dataclass
class LangScore:
    n: int
    wer: float
    cer: float
    mer: float
    sub: int  # substitutions, deletions, insertions of the MER's unit
    dele: int
    ins: int
    # Edits and reference units per metric ("wer": words, "cer": characters, "mer": the language's
    # unit), for error rates pooled over languages.
    counts: dict[str, tuple[int, int]] = field(default_factory=dict)


@dataclass
class SetScore:
    languages: dict[str, LangScore]
    average: dict[str, float]  # mean over languages, as the papers' tables
    lid_accuracy: float | None
    confusion: dict[str, dict[str, int]] | None  # reference language -> hypothesis language -> count
    missing: int = 0  # references without a hypothesis, scored as empty (--missing-as-empty)

    def to_json(self) -> dict:
        langs = {
            k: {"n": v.n, "wer": v.wer, "cer": v.cer, "mer": v.mer, "sub": v.sub, "del": v.dele, "ins": v.ins}
            for k, v in self.languages.items()
        }
        return {
            "languages": langs,
            "average": self.average,
            "lid_accuracy": self.lid_accuracy,
            "confusion": self.confusion,
            "missing_scored_as_empty": self.missing,
        }


def lid_confusion(pairs: list[tuple[str, str]]) -> tuple[dict[str, dict[str, int]], float]:
    """(reference language -> predicted language -> count, accuracy) over (reference, predicted)
    language pairs, compared by base language (en-IN counts as en)."""
    confusion: dict[str, Counter] = defaultdict(Counter)
    for ref, hyp in pairs:
        confusion[base_language(ref)][base_language(hyp)] += 1
    correct = sum(c[lang] for lang, c in confusion.items())
    return {k: dict(v) for k, v in confusion.items()}, correct / max(1, len(pairs))


def score(
    refs: dict[str, tuple[str, str]], hyps: dict[str, tuple[str | None, str]], missing_as_empty: bool = False
) -> SetScore:
    """refs: id -> (language, text); hyps: id -> (language or None, text). Ids must match, unless
    `missing_as_empty`: then a reference without hypothesis scores as all deletions and a LID miss."""
    missing, extra = sorted(set(refs) - set(hyps)), sorted(set(hyps) - set(refs))
    has_lang = all(h[0] for h in hyps.values())
    if missing and missing_as_empty and not extra:
        hyps = {**hyps, **{utt: ("-", "") for utt in missing}}
    elif missing or extra:
        parts = []
        if missing:
            parts.append(f"{len(missing)} reference id(s) without hypothesis ({', '.join(missing[:3])}...)")
        if extra:
            parts.append(f"{len(extra)} hypothesis id(s) not in the reference ({', '.join(extra[:3])}...)")
        raise HloraError("ids do not match: " + "; ".join(parts) + " (--missing-as-empty scores the first as empty)")
    by_lang: dict[str, list[tuple[str, str]]] = defaultdict(list)
    for utt, (lang, text) in refs.items():
        base = base_language(lang)
        by_lang[base].append((normalize(text, base), normalize(hyps[utt][1], base)))
    languages = {}
    for lang, pairs in sorted(by_lang.items()):
        r, h = [p[0] for p in pairs], [p[1] for p in pairs]
        ws, wd, wi, wn = _edits(r, h, words=True)
        cs, cd, ci, cn = _edits([_chars(x, lang) for x in r], [_chars(x, lang) for x in h], words=False)
        if not wn or not cn:  # errors per reference unit, of no units: undefined, not 400 %
            raise HloraError(
                f"language {lang}: its {len(pairs)} reference(s) hold no words once normalized, so an error rate "
                "is undefined: score against references with text"
            )
        wer, cer = (ws + wd + wi) / max(1, wn), (cs + cd + ci) / max(1, cn)
        by_char = get_normalizer(lang).split_characters
        s, d, i = (cs, cd, ci) if by_char else (ws, wd, wi)
        counts = {"wer": (ws + wd + wi, wn), "cer": (cs + cd + ci, cn)}
        counts["mer"] = counts["cer"] if by_char else counts["wer"]
        languages[lang] = LangScore(len(pairs), wer, cer, cer if by_char else wer, s, d, i, counts)
    # The mean over languages, and (as the MLC-SLM MER and the HLoRA paper's Avg rows) the rate
    # pooled over every reference unit of every language.
    average = {k: sum(getattr(v, k) for v in languages.values()) / len(languages) for k in ("wer", "cer", "mer")}
    for k in ("wer", "cer", "mer"):
        edits, units = (sum(v.counts[k][i] for v in languages.values()) for i in (0, 1))
        average[f"{k}_pooled"] = edits / max(1, units)
    confusion, lid = (
        lid_confusion([(lang, hyps[utt][0]) for utt, (lang, _) in refs.items()]) if has_lang else (None, None)
    )
    return SetScore(languages, average, lid, confusion, len(missing) if missing_as_empty else 0)
