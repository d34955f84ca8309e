"""One normalizer per language, and the registry that finds it (region codes such as `en-IN` use
their language's normalizer; languages without an entry get the generic rules)."""

from __future__ import annotations

from dataclasses import dataclass

from text_normalization import rules


@dataclass(frozen=True)
class Normalizer:
    """NFKC -> case folding -> punctuation removal -> [character splitting] -> spaces."""

    lang: str
    keep_apostrophes: bool = False  # English, French: `it's`, `l'homme`
    split_characters: bool = False  # Japanese, Korean, Thai, Chinese: scored by CER

    def __call__(self, text: str, keep_words: bool = False, prefix: bool = False) -> str:
        """Normalize one line. `keep_words` leaves word spacing as written (e.g. Korean eojeol) instead
        of splitting characters; `prefix` starts the result with the language token `<lang>`."""
        text = rules.strip_language_prefix(rules.nfkc(text).strip())
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
    **{lang: Normalizer(lang, split_characters=True) for lang in ("ja", "ko", "th", "zh")},
}
LANGUAGES = tuple(sorted(_REGISTRY))
CER_LANGUAGES = tuple(lang for lang, n in _REGISTRY.items() if n.split_characters)


def base_language(code: str) -> str:
    """`en-IN` -> `en`, `pt_BR` -> `pt`, `EN` -> `en`."""
    return code.replace("_", "-").split("-")[0].lower()


def get_normalizer(lang: str) -> Normalizer:
    base = base_language(lang)
    return _REGISTRY.get(base, Normalizer(base))


def normalize(text: str, lang: str, keep_words: bool = False, prefix: bool = False) -> str:
    """Normalize `text` in language `lang` (ISO 639-1, region suffix allowed)."""
    return get_normalizer(lang)(text, keep_words=keep_words, prefix=prefix)
