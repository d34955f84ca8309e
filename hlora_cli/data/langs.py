"""Language codes: ISO 639-1 or 639-3 (or one with a registered normalizer), optionally with a
region (`en-IN`), mapped onto a configured set. Every code a command reads goes through
`language_code` here: text_normalization's check, which folds the case (`EN` -> `en`), its error
made hlora's one-line error."""

from __future__ import annotations

from collections.abc import Iterable

from hlora_cli.errors import HloraError
from text_normalization import registry
from text_normalization.errors import LanguageError
from text_normalization.registry import base_language

__all__ = ["base_language", "language_code", "language_files", "language_list", "resolve_language"]


def language_code(code: object, where: str | None = None) -> str:
    """The code as the toolkit stores it (text_normalization.registry.language_code); a code that
    is not a language raises HloraError, prefixed with `where` (a file and line, an option)."""
    try:
        return registry.language_code(code, where)
    except LanguageError as e:
        raise HloraError(str(e)) from e


def language_list(value: str | None, option: str = "--languages") -> list[str] | None:
    """A comma-separated option value as checked codes (None for no value); one line naming the
    option for a code that is not a language."""
    if value is None:
        return None
    codes = [language_code(x.strip(), option) for x in value.split(",") if x.strip()]
    if not codes:
        raise HloraError(f"{option} {value!r}: no language given; list codes separated by commas, e.g. en,de")
    return list(dict.fromkeys(codes))


def resolve_language(code: str, languages: Iterable[str]) -> str | None:
    """The member of `languages` that `code` means: itself if listed (`en-IN` kept apart when
    configured), else its base language (`en-IN` -> `en`); None if neither is configured. A code
    that is not a language raises HloraError."""
    languages = set(languages)
    code = language_code(code)
    if code in languages:
        return code
    base = base_language(code)
    return base if base in languages else None


def language_files(values: list[str], option: str, example: str) -> dict[str, str]:
    """Repeated `OPTION LANG=PATH` values as {checked code: path}: one line naming the option for a
    value without `=`, a code that is not a language, or a second path for one language. The
    caller checks the files (what a missing one means differs)."""
    out: dict[str, str] = {}
    for v in values:
        lang, sep, path = v.partition("=")
        if not sep or not lang or not path:
            raise HloraError(f"{option} {v}: expected LANG=PATH, e.g. {option} {example}")
        code = language_code(lang, f"{option} {v}")
        if code in out:
            raise HloraError(f"{option} {v}: a second file for {code}")
        out[code] = path
    return out
