"""One normalizer per language, and the registry that finds it (region codes such as `en-IN` use
their language's normalizer; languages without an entry get the generic rules). `language_code`
is the one check of a language code that every command goes through."""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass

from text_normalization import rules

# The one exception the CLI prints as a one-line error; a bad code is a user's input error.
from text_normalization.errors import LanguageError
from text_normalization.iso639 import ISO_639_1, ISO_639_3


@dataclass(frozen=True)
class Normalizer:
    """NFKC -> [script folding] -> case folding -> punctuation removal -> [character splitting] ->
    spaces."""

    lang: str
    keep_apostrophes: bool = False  # English, French: `it's`, `l'homme`
    split_characters: bool = False  # Japanese, Korean, Thai, Chinese: scored by CER
    fold_script: str | None = None  # an OpenCC conversion: Chinese in one script (`t2s`: Simplified)

    def __call__(self, text: str, keep_words: bool = False, prefix: bool = False) -> str:
        """Normalize one line. `keep_words` leaves word spacing as written (e.g. Korean eojeol) instead
        of splitting characters; `prefix` starts the result with the language token `<lang>`."""
        text = rules.strip_language_prefix(rules.nfkc(text).strip())
        if self.fold_script:
            text = rules.fold_chinese_script(text, self.fold_script)
        text = rules.fold_case(text)
        text = rules.remove_punctuation(text, keep_apostrophes=self.keep_apostrophes)
        text = rules.collapse_spaces(text)
        if self.split_characters and not keep_words:
            text = rules.split_characters(text)
        return rules.add_language_prefix(text, self.lang) if prefix else text


_REGISTRY: dict[str, Normalizer] = {
    "en": Normalizer("en", keep_apostrophes=True),
    "fr": Normalizer("fr", keep_apostrophes=True),
    **{lang: Normalizer(lang) for lang in ("de", "es", "pt", "it", "ru", "vi")},
    **{lang: Normalizer(lang, split_characters=True) for lang in ("ja", "ko", "th")},
    # Mandarin is written in Simplified or Traditional characters: score it in one script (Whisper
    # writes Traditional for much Mandarin speech). Digits stay digits: `150` against `一百五十` is an
    # error, as the reading of a number is part of the transcript.
    "zh": Normalizer("zh", split_characters=True, fold_script="t2s"),
}
LANGUAGES = tuple(sorted(_REGISTRY))
CER_LANGUAGES = tuple(lang for lang, n in _REGISTRY.items() if n.split_characters)
_BASE = re.compile(r"[a-z]{2,8}")
_SUBTAG = re.compile(r"[A-Za-z0-9]{1,8}")


def register_normalizer(normalizer: Normalizer) -> None:
    """Add (or replace) the normalizer of `normalizer.lang`; its code is then a valid language code
    even where ISO 639 does not list it."""
    if not _BASE.fullmatch(normalizer.lang):
        raise LanguageError(f"{normalizer.lang!r}: a normalizer's language is 2 to 8 lower-case letters (no region)")
    _REGISTRY[normalizer.lang] = normalizer
    forget_cached_codes()  # the code is valid now


def forget_cached_codes() -> None:
    """Drop the cached code checks and normalizers (after the registry changed)."""
    _checked.cache_clear()
    get_normalizer.cache_clear()


def base_language(code: str) -> str:
    """`en-IN` -> `en`, `pt_BR` -> `pt`, `EN` -> `en`."""
    return code.replace("_", "-").split("-")[0].lower()


@functools.lru_cache(maxsize=4096)  # a manifest repeats a few codes a million times
def _checked(code: str) -> str | None:
    base, *rest = code.replace("_", "-").split("-")
    base = base.lower()
    if not _BASE.fullmatch(base) or not all(_SUBTAG.fullmatch(tag) for tag in rest):
        return None
    if base not in _REGISTRY and base not in (ISO_639_1 if len(base) == 2 else ISO_639_3):
        return None
    return base + code[len(base) :]


def language_code(code: object, where: str | None = None) -> str:
    """The code as the toolkit stores it: an ISO 639-1 (`en`) or ISO 639-3 (`yue`) code, or one
    with a registered normalizer, in lower case, with any region or variant kept as written
    (`EN-IN` -> `en-IN`). Anything else raises LanguageError (prefixed with `where`, e.g. a file and
    line or an option name)."""
    canonical = _checked(code) if isinstance(code, str) else None
    if canonical is None:
        raise LanguageError(
            f"{where + ': ' if where else ''}{code!r} is not a language code: use ISO 639-1 (en) or ISO 639-3 "
            "(yue), optionally with a region (en-IN), or register a normalizer for it"
        )
    return canonical


@functools.lru_cache(maxsize=1024)
def get_normalizer(lang: str) -> Normalizer:
    base = base_language(language_code(lang))
    return _REGISTRY.get(base, Normalizer(base))


def normalize(text: str, lang: str, keep_words: bool = False, prefix: bool = False) -> str:
    """Normalize `text` in language `lang` (ISO 639-1, region suffix allowed)."""
    return get_normalizer(lang)(text, keep_words=keep_words, prefix=prefix)
