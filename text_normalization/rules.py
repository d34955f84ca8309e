"""The normalization rules, each a small documented function; `registry.py` combines them per
language. Every rule is idempotent, so their composition is too."""

from __future__ import annotations

import functools
import unicodedata

import regex

# Scripts written without spaces between words, scored by character error rate in the MLC-SLM
# challenge (Japanese, Korean, Thai) and for Chinese: Han, Hiragana, Katakana, Hangul, Thai.
_SPLIT_SCRIPT = r"\p{Han}\p{Hiragana}\p{Katakana}\p{Hangul}\p{Thai}ー々〆"
_SPLIT_CHAR = regex.compile(rf"[{_SPLIT_SCRIPT}]\p{{M}}*")
_APOSTROPHES = regex.compile(r"[’ʼ‘`´]")
_INNER_APOSTROPHE = "\x00"  # placeholders protecting kept marks from punctuation removal
_DIGIT_SEPARATOR = {".": "\x01", ",": "\x02"}
_PREFIX = regex.compile(r"^(?:<[a-z]{2,3}(?:-[a-z0-9]+)?>\s*)+")
_LETTER_APOSTROPHE = regex.compile(r"(?<=\p{L})'(?=\p{L})")
_DIGIT_MARK = regex.compile(r"(?<=\d)[.,](?=\d)")
_PUNCTUATION = regex.compile(r"\p{P}")
_HAN = regex.compile(r"\p{Han}")


def nfkc(text: str) -> str:
    """Unicode NFKC: full-width forms, ligatures and compatibility characters to their plain form
    (`ＡＢＣ１２３` -> `ABC123`, `ﬁ` -> `fi`, half-width katakana -> full-width)."""
    return unicodedata.normalize("NFKC", text)


def fold_case(text: str) -> str:
    """Lower case for scripts that have case; others are unchanged. `str.lower` rather than
    `casefold` keeps German ß as written."""
    return nfkc(text.lower())


def remove_punctuation(text: str, keep_apostrophes: bool = False) -> str:
    """Replace every Unicode punctuation character (categories P*) by a space, except a `.` or `,`
    between two digits (`3.5`, `1,000` stay one number). With `keep_apostrophes` (English,
    French), an apostrophe between two letters stays (`it's`, `l'homme`); typographic
    apostrophes become `'` first."""
    if keep_apostrophes:
        text = _APOSTROPHES.sub("'", text)
        text = _LETTER_APOSTROPHE.sub(_INNER_APOSTROPHE, text)
    text = _DIGIT_MARK.sub(lambda m: _DIGIT_SEPARATOR[m.group(0)], text)
    text = _PUNCTUATION.sub(" ", text)
    text = text.replace(_INNER_APOSTROPHE, "'")
    for mark, placeholder in _DIGIT_SEPARATOR.items():
        text = text.replace(placeholder, mark)
    return text


def collapse_spaces(text: str) -> str:
    """One ASCII space between tokens, none at the ends; every Unicode space counts."""
    return " ".join(text.split())


def split_characters(text: str) -> str:
    """A space between characters of scripts without word spaces (Han, kana, Hangul, Thai), so
    that word error rate on them is character error rate. A character keeps its combining marks
    (Thai tone marks). Runs of other characters (Latin words in code-switched text, digits) stay
    whole, as single tokens."""
    text = _SPLIT_CHAR.sub(lambda m: f" {m.group(0)} ", text)
    return collapse_spaces(text)


@functools.lru_cache(maxsize=4)
def _opencc(config: str):  # building a converter reads its dictionaries: once per process
    import opencc

    return opencc.OpenCC(config)


def fold_chinese_script(text: str, config: str = "t2s") -> str:
    """Traditional Chinese characters to Simplified (OpenCC's `t2s` conversion: 本保險 -> 本保险,
    臺灣 -> 台湾), so that a script variant of the same word is never scored as an error. Text
    without Han characters is returned as it is."""
    if not _HAN.search(text):
        return text
    return _opencc(config).convert(text)


def strip_language_prefix(text: str) -> str:
    """Remove leading language-prefix tokens such as `<en>`."""
    return _PREFIX.sub("", text)


def add_language_prefix(text: str, lang: str) -> str:
    """`<lang> text`: the language-prefix token of the baseline's shared vocabulary."""
    return f"<{lang}> {text}".rstrip()
