"""Token inventories for the CTC heads: per-language characters from normalized training text
(blank = 0, a word-boundary symbol, an unknown symbol), plus the shared inventory of the baseline.

Tokenization of a normalized line: characters; `|` between words. In languages scored by CER the
normalizer has put a space between every character, which is not a word boundary: there `|`
only separates two multi-character words (Latin words in code-switched text, Korean kept with
`--keep-words`), so the model is not asked to emit a boundary between every Japanese character.

With `unit="bpe"`, languages scored by WER (and, when asked, the others) use sentencepiece BPE
pieces instead of characters (see bpe.py): one model per language for the routed heads, one over
all languages for the shared head, with the `<xx>` prefixes kept whole."""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import regex

from hlora_cli.data import bpe
from hlora_cli.data.manifest import Utterance
from hlora_cli.errors import HloraError
from hlora_cli.files import atomic_write
from text_normalization.registry import get_normalizer, normalize
from text_normalization.rules import strip_language_prefix

BLANK = "<blank>"  # index 0 of every CTC inventory

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
    if not split:  # characters, with WORD between words (in one C call: a million lines notice)
        tokens.extend(WORD.join(units))
        return tokens
    for i, unit in enumerate(units):
        if i > 0 and not (_single_split_char(unit) or _single_split_char(units[i - 1])):
            tokens.append(WORD)
        tokens.extend(unit)
    return tokens


def from_tokens(tokens: list[str], lang: str) -> str:
    """Text from tokens (characters or BPE pieces, `▁` starting a word), re-normalized so CER
    languages are spaced as the references are."""
    text = "".join(" " if t == WORD else t for t in tokens if t not in (BLANK, UNK) and not _PREFIX.match(t))
    text = text.replace(bpe.WORD_START, " ")
    return normalize(text, lang, keep_words=not get_normalizer(lang).split_characters)


def norm_text(u: Utterance) -> str:
    return u.text_norm if u.text_norm is not None else normalize(u.text, u.lang)


@dataclass
class Vocab:
    languages: dict[str, list[str]]  # lang -> tokens, blank first
    shared: list[str] = field(default_factory=list)  # the shared head's union inventory
    # BPE models (base64), by language and "shared"; `bpe_languages`: those the shared model covers
    bpe: dict[str, str] = field(default_factory=dict)
    bpe_languages: list[str] = field(default_factory=list)
    _indices: dict[str, dict[str, int]] = field(default_factory=dict, init=False, repr=False, compare=False)

    def tokens(self, text_norm: str, lang: str, shared: bool = False) -> list[str]:
        """Tokens of a normalized line: characters, or BPE pieces where the inventory is BPE."""
        model = self.bpe.get("shared") if shared else self.bpe.get(lang)
        if model is None or (shared and lang not in self.bpe_languages):
            return to_tokens(text_norm, lang)
        units = text_norm.split()
        prefix = [units.pop(0)] if units and _PREFIX.match(units[0]) else []
        return prefix + [WORD if p == bpe.WORD_START else p for p in bpe.encode(model, " ".join(units))]

    def encode(self, text_norm: str, lang: str, shared: bool = False) -> tuple[list[int], int]:
        """Token ids of a normalized line and how many tokens were mapped to unknown."""
        index = self._index("" if shared else lang)
        unk = index[UNK]
        ids = [index.get(t, unk) for t in self.tokens(text_norm, lang, shared)]
        return ids, sum(1 for i in ids if i == unk)

    def _index(self, lang: str) -> dict[str, int]:
        """Token -> id in `lang`'s inventory ("": the shared one), built once per inventory."""
        if lang not in self._indices:
            tokens = self.languages.get(lang) if lang else self.shared
            if tokens is None:
                raise HloraError(f"language {lang} has no token inventory (vocab has {', '.join(self.languages)})")
            self._indices[lang] = {t: i for i, t in enumerate(tokens)}
        return self._indices[lang]

    def head_inventories(self, languages: list[str], shared: bool) -> tuple[dict[str, list[str]], list[str]]:
        """The CTC heads' inventories of a model of `languages`: (per language, the shared one),
        one of them empty: a head per language, or one shared head (`shared`)."""
        return ({}, self.shared) if shared else ({lang: self.languages[lang] for lang in languages}, [])

    def bpe_models_for(self, languages: list[str], shared: bool) -> dict[str, str]:
        """The BPE models a model over `languages` with a shared or per-language heads encodes with."""
        if shared:
            return {"shared": self.bpe["shared"]} if "shared" in self.bpe else {}
        return {lang: self.bpe[lang] for lang in languages if lang in self.bpe}

    def has_prefix_tokens(self, languages: list[str]) -> bool:
        """Whether the shared inventory has the `<xx>` prefix token of every language."""
        shared = set(self.shared)
        return bool(languages) and all(f"<{lang}>" in shared for lang in languages)

    def to_json(self) -> dict:
        return {
            "blank": BLANK,
            "word_boundary": WORD,
            "unknown": UNK,
            "languages": self.languages,
            "shared": self.shared,
            "bpe": self.bpe,
            "bpe_languages": self.bpe_languages,
        }

    def save(self, path: Path) -> None:
        text = json.dumps(self.to_json(), ensure_ascii=False, indent=1) + "\n"
        atomic_write(path, lambda p: p.write_text(text, encoding="utf-8"))

    @classmethod
    def load(cls, path: str | Path) -> Vocab:
        path = Path(path)
        try:
            d = json.loads(path.read_text(encoding="utf-8"))
            vocab = cls(d["languages"], d.get("shared", []), d.get("bpe", {}), d.get("bpe_languages", []))
        except FileNotFoundError as e:
            raise HloraError(f"{path}: vocab file not found") from e
        except (json.JSONDecodeError, KeyError, TypeError) as e:
            raise HloraError(f"{path}: not an hlora vocab file ({e})") from e
        for lang, tokens in vocab.languages.items():
            if tokens[:3] != SPECIALS:
                raise HloraError(f"{path}: inventory of {lang} must start with {SPECIALS}")
        from hlora_cli.data.bpe import _processor

        for key, model in vocab.bpe.items():  # parsed now: a broken one is named before training starts
            try:
                _processor(model)
            except HloraError as e:
                raise HloraError(f"{path}: bpe[{key!r}]: {e}") from e
        return vocab


def build_vocab(
    utts: list[Utterance],
    prefix_tokens: bool = False,
    min_count: int = 1,
    unit: str = "char",
    bpe_size: int = 500,
    bpe_cer_languages: bool = False,
) -> Vocab:
    """Per-language inventories and the shared inventory over their union (plus `<xx>` prefix
    tokens when asked). unit "char": characters seen at least `min_count` times, sorted; "bpe":
    BPE pieces of at most `bpe_size` per model for the languages scored by WER (and for the
    others too with `bpe_cer_languages`), characters for the rest."""
    if unit == "bpe":
        return _build_bpe_vocab(utts, prefix_tokens, min_count, bpe_size, bpe_cer_languages)
    if unit != "char":
        raise HloraError(f"unknown unit '{unit}': choose char or bpe")
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


def _build_bpe_vocab(
    utts: list[Utterance], prefix_tokens: bool, min_count: int, size: int, cer_languages: bool
) -> Vocab:
    chars = build_vocab(utts, prefix_tokens, min_count)  # characters for the languages kept as such
    lines: dict[str, list[str]] = {}
    for u in utts:
        lines.setdefault(u.lang, []).append(strip_language_prefix(norm_text(u)).strip())
    bpe_langs = [lang for lang in lines if cer_languages or not get_normalizer(lang).split_characters]
    models = {lang: bpe.train_bpe(lines[lang], size) for lang in bpe_langs}
    languages = {lang: SPECIALS + bpe.pieces(models[lang]) for lang in models}
    languages.update({lang: chars.languages[lang] for lang in lines if lang not in models})
    prefixes = [f"<{lang}>" for lang in sorted(lines)] if prefix_tokens else []
    if bpe_langs:
        # The shared model sees every BPE language; its prefixes are whole symbols, as ESPnet's
        # user-defined non-linguistic symbols.
        models["shared"] = bpe.train_bpe([x for lang in bpe_langs for x in lines[lang]], size, prefixes)
    shared_pieces = set(bpe.pieces(models["shared"], prefixes)) if bpe_langs else set()
    char_units = {t for lang, tokens in chars.languages.items() if lang not in bpe_langs for t in tokens[3:]}
    shared = SPECIALS + prefixes + sorted(shared_pieces | char_units)
    return Vocab(dict(sorted(languages.items())), shared, models, sorted(bpe_langs))


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
