"""Token inventories for the CTC heads: per-language characters from normalized training text
(blank = 0, a word-boundary symbol, an unknown symbol), plus the shared inventory of the baseline.

Tokenization of a normalized line: characters; `|` between words. In languages scored by CER the
normalizer has put a space between every character, which is not a word boundary: there `|`
only separates two multi-character words (Latin words in code-switched text, Korean kept with
`--keep-words`), so the model is not asked to emit a boundary between every Japanese character."""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import regex

from hlora_cli.data.manifest import Utterance
from hlora_cli.errors import HloraError
from hlora_cli.model.checkpoint import atomic_write
from hlora_cli.model.config import BLANK
from text_normalization.registry import get_normalizer, normalize

WORD = "|"
UNK = "<unk>"
SPECIALS = [BLANK, WORD, UNK]
_PREFIX = regex.compile(r"^<[a-z]{2,3}(?:-[a-z0-9]+)?>$")


def _single_split_char(unit: str) -> bool:
    return len(regex.findall(r"\X", unit)) == 1 and not regex.match(r"[\p{Latin}\d]", unit)


def to_tokens(text_norm: str, lang: str) -> list[str]:
    """Tokens of a normalized line (a leading `<xx>` language prefix is one token)."""
    units = text_norm.split()
    tokens: list[str] = []
    if units and _PREFIX.match(units[0]):
        tokens.append(units.pop(0))
    split = get_normalizer(lang).split_characters
    for i, unit in enumerate(units):
        if i > 0 and not (split and (_single_split_char(unit) or _single_split_char(units[i - 1]))):
            tokens.append(WORD)
        tokens.extend(unit)
    return tokens


def from_tokens(tokens: list[str], lang: str) -> str:
    """Text from tokens, re-normalized so CER languages are spaced as the references are."""
    text = "".join(" " if t == WORD else t for t in tokens if t not in (BLANK, UNK) and not _PREFIX.match(t))
    return normalize(text, lang, keep_words=not get_normalizer(lang).split_characters)


def norm_text(u: Utterance) -> str:
    return u.text_norm if u.text_norm is not None else normalize(u.text, u.lang)


@dataclass
class Vocab:
    languages: dict[str, list[str]]  # lang -> tokens, blank first
    shared: list[str] = field(default_factory=list)  # the baseline's union inventory

    def encode(self, text_norm: str, lang: str, shared: bool = False) -> tuple[list[int], int]:
        """Token ids of a normalized line and how many characters were mapped to unknown."""
        tokens = self.shared if shared else self.languages.get(lang)
        if tokens is None:
            raise HloraError(f"language {lang} has no token inventory (vocab has {', '.join(self.languages)})")
        index = {t: i for i, t in enumerate(tokens)}
        unk = index[UNK]
        ids = [index.get(t, unk) for t in to_tokens(text_norm, lang)]
        return ids, sum(1 for i in ids if i == unk)

    def to_json(self) -> dict:
        return {
            "blank": BLANK,
            "word_boundary": WORD,
            "unknown": UNK,
            "languages": self.languages,
            "shared": self.shared,
        }

    def save(self, path: Path) -> None:
        text = json.dumps(self.to_json(), ensure_ascii=False, indent=1) + "\n"
        atomic_write(path, lambda p: p.write_text(text, encoding="utf-8"))

    @classmethod
    def load(cls, path: str | Path) -> Vocab:
        path = Path(path)
        try:
            d = json.loads(path.read_text(encoding="utf-8"))
            vocab = cls(d["languages"], d.get("shared", []))
        except FileNotFoundError as e:
            raise HloraError(f"{path}: vocab file not found") from e
        except (json.JSONDecodeError, KeyError, TypeError) as e:
            raise HloraError(f"{path}: not an hlora vocab file ({e})") from e
        for lang, tokens in vocab.languages.items():
            if tokens[:3] != SPECIALS:
                raise HloraError(f"{path}: inventory of {lang} must start with {SPECIALS}")
        return vocab


def build_vocab(utts: list[Utterance], prefix_tokens: bool = False, min_count: int = 1) -> Vocab:
    """Per-language character inventories (characters seen at least `min_count` times, sorted)
    and the shared inventory over their union (plus `<xx>` prefix tokens when asked)."""
    counts: dict[str, Counter] = {}
    for u in utts:
        counts.setdefault(u.lang, Counter()).update(
            t for t in to_tokens(norm_text(u), u.lang) if t != WORD and not _PREFIX.match(t)
        )
    if not counts:
        raise HloraError("no utterances to build a vocabulary from")
    languages = {
        lang: SPECIALS + sorted(ch for ch, n in c.items() if n >= min_count) for lang, c in sorted(counts.items())
    }
    union = sorted({t for tokens in languages.values() for t in tokens[3:]})
    prefixes = [f"<{lang}>" for lang in languages] if prefix_tokens else []
    return Vocab(languages, SPECIALS + prefixes + union)


def coverage(utts: list[Utterance], vocab: Vocab) -> dict[str, dict]:
    """Per language: characters of `utts` outside the inventory, with counts, and the share of
    covered characters."""
    report: dict[str, dict] = {}
    for u in utts:
        r = report.setdefault(u.lang, {"chars": 0, "missing": Counter(), "no_inventory": u.lang not in vocab.languages})
        known = set(vocab.languages.get(u.lang, []))
        for t in to_tokens(norm_text(u), u.lang):
            if t == WORD or _PREFIX.match(t):
                continue
            r["chars"] += 1
            if t not in known:
                r["missing"][t] += 1
    for r in report.values():
        r["covered"] = 1 - sum(r["missing"].values()) / max(1, r["chars"])
        r["missing"] = dict(r["missing"].most_common())
    return report
