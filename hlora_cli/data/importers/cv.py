"""Common Voice releases: a TSV (train.tsv, dev.tsv, validated.tsv, ...) with columns `path`,
`sentence` and, in recent releases, `locale`; clips in `clips/` beside it."""

from __future__ import annotations

import csv
import io
from pathlib import Path

from hlora_cli.data.importers import ImportResult, read_text
from hlora_cli.data.langs import language_code
from hlora_cli.data.manifest import Rejected, Utterance
from hlora_cli.errors import HloraError


def import_cv(tsv_or_dir: Path, split: str = "train", lang: str | None = None) -> ImportResult:
    if lang is not None:
        lang = language_code(lang, "--lang")
    tsv = tsv_or_dir / f"{split}.tsv" if tsv_or_dir.is_dir() else tsv_or_dir
    if not tsv.exists():
        raise HloraError(f"{tsv}: Common Voice TSV not found")
    clips = tsv.parent / "clips"
    result = ImportResult()
    # read_text: a byte-order mark is dropped (else the first column reads "\ufeffclient_id") and a
    # byte that is not UTF-8 is named with its line; QUOTE_NONE keeps one record a line
    reader = csv.DictReader(io.StringIO(read_text(tsv), newline=""), delimiter="\t", quoting=csv.QUOTE_NONE)
    missing = {"path", "sentence"} - set(reader.fieldnames or [])
    if missing:
        raise HloraError(
            f"{tsv}: missing column(s) {', '.join(sorted(missing))} (a Common Voice TSV has path, sentence, locale)"
        )
    if "locale" not in (reader.fieldnames or []) and lang is None:
        raise HloraError(f"{tsv}: no locale column; pass --lang")
    for row in reader:
        where = f"{tsv}:{reader.line_num}"
        sentence = (row.get("sentence") or "").strip()
        code = row.get("locale") or lang
        clip = Path((row.get("path") or "").strip())
        if not clip.name:
            result.rejected.append(Rejected({"text": sentence}, f"no clip path: {where}"))
            continue
        if not code:
            result.rejected.append(Rejected({"id": clip.stem, "text": sentence}, f"no locale: {where}"))
            continue
        result.utts.append(
            Utterance(
                clip.stem,
                str(clip if clip.is_absolute() else clips / clip),
                code,
                sentence,
                speaker=row.get("client_id") or None,
            )
        )
    return result
