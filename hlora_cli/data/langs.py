"""Language codes: ISO 639-1, optionally with a region (`en-IN`), mapped onto a configured set."""

from __future__ import annotations

from collections.abc import Iterable

from text_normalization.registry import base_language


def resolve_language(code: str, languages: Iterable[str]) -> str | None:
    """The member of `languages` that `code` means: itself if listed (`en-IN` kept apart when
    configured), else its base language (`en-IN` -> `en`); None if neither is configured."""
    languages = set(languages)
    if code in languages:
        return code
    base = base_language(code)
    return base if base in languages else None
