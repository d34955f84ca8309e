"""Corpus importers: each turns a corpus layout on disk into manifest rows plus rejected rows with
reasons (nothing is dropped silently). `write_import` validates, writes, and summarises."""

from __future__ import annotations

import codecs
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from pathlib import Path

from hlora_cli.data.langs import language_code
from hlora_cli.data.manifest import Rejected, Utterance, validate, write_manifest, write_rejected
from hlora_cli.errors import HloraError


def read_text(path: Path) -> str:
    """A transcript or table file as text: UTF-8, a leading byte-order mark dropped. Bytes that are
    not UTF-8 are an error naming the file and the line."""
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise HloraError(f"{path}: file not found") from None
    except IsADirectoryError:
        raise HloraError(f"{path}: is a directory, expected a text file") from None
    if data.startswith(codecs.BOM_UTF8):
        data = data[len(codecs.BOM_UTF8) :]
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as e:
        line = data.count(b"\n", 0, e.start) + 1
        raise HloraError(
            f"{path}:{line}: not UTF-8 text (byte 0x{data[e.start]:02x}); convert the file to UTF-8 "
            "(e.g. iconv -f latin1 -t utf-8)"
        ) from None


def read_lines(path: Path) -> list[str]:
    """The lines of a text file (see read_text), split at "\n" only, so that line numbers are the
    ones an editor shows; a trailing "\r" is dropped."""
    return [line.removesuffix("\r") for line in read_text(path).split("\n")]


@dataclass
class LanguageRule:
    """A row's language: one for every row (--lang), or the row's own, a name mapped to a code
    (--lang-map). `language` raises ValueError with the reason a row is rejected."""

    lang: str | None = None
    lang_map: dict[str, str] = field(default_factory=dict)

    @classmethod
    def of(cls, lang: str | None, lang_map: dict[str, str] | None) -> LanguageRule:
        return cls(language_code(lang, "--lang") if lang else None, lang_map or {})

    def language(self, value: object) -> str:
        if self.lang is not None:
            return self.lang
        if value is None or value == "":
            raise ValueError("language: the row has none (give --lang)")
        given = self.lang_map.get(str(value), value)
        try:
            return language_code(given)
        except HloraError:
            raise ValueError(f"language: {value!r} is not a language code (map it: --lang-map '{value}=xx')") from None


@dataclass
class ImportResult:
    utts: list[Utterance] = field(default_factory=list)
    rejected: list[Rejected] = field(default_factory=list)


@dataclass
class ImportSummary:
    manifest: Path
    rejected_file: Path | None
    per_language: dict[str, tuple[int, float]]  # lang -> (utterances, hours)
    rejected: dict[str, int]  # reason -> count

    @property
    def total(self) -> tuple[int, float]:
        return sum(n for n, _ in self.per_language.values()), sum(h for _, h in self.per_language.values())


def _reason_key(reason: str) -> str:
    # Reasons read "kind: detail"; the summary counts kinds.
    return reason.split(":")[0]


def rejected_path(out: Path) -> Path:
    """Where an import into OUT puts the rows it rejects (removed when there are none)."""
    return out.with_suffix(".rejected.jsonl")


def write_import(
    result: ImportResult, out: Path, languages: list[str] | None = None, max_duration: float = 30.0
) -> ImportSummary:
    """Validate the imported rows, write the manifest and (if any) OUT.rejected.jsonl."""
    ok, rejected = validate(result.utts, languages=languages, max_duration=max_duration)
    rejected = result.rejected + rejected
    write_manifest(out, ok)
    rejected_file = rejected_path(out)
    if rejected:
        write_rejected(rejected_file, rejected)
    else:
        rejected_file.unlink(missing_ok=True)
        rejected_file = None
    per_lang: dict[str, list[float]] = defaultdict(list)
    for u in ok:
        per_lang[u.lang].append(u.duration or 0.0)
    summary = {lang: (len(d), sum(d) / 3600) for lang, d in sorted(per_lang.items())}
    return ImportSummary(out, rejected_file, summary, dict(Counter(_reason_key(r.reason) for r in rejected)))
