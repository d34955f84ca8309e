"""Text normalization for multilingual ASR training and scoring: one normalizer per language,
found through a registry. Pure functions of text, no I/O.

    >>> from text_normalization import normalize
    >>> normalize("Hello, World! It's 5 o'clock.", "en")
    "hello world it's 5 o'clock"
    >>> normalize("今日はiPhoneを買った。", "ja")
    '今 日 は iphone を 買 っ た'
"""

from text_normalization.registry import LANGUAGES, Normalizer, get_normalizer, normalize

__all__ = ["LANGUAGES", "Normalizer", "get_normalizer", "normalize"]
