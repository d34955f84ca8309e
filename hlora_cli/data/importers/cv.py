"""Common Voice releases: a TSV (train.tsv, dev.tsv, validated.tsv, ...) with columns `path`,
`sentence` and, in recent releases, `locale`; clips in `clips/` beside it."""

from __future__ import annotations

import csv
from pathlib import Path

from hlora_cli.data.importers import ImportResult
from hlora_cli.data.manifest import Rejected, Utterance
from hlora_cli.errors import HloraError


def import_cv(tsv_or_dir: Path, split: str = "train", lang: str | None = None) -> ImportResult:
    tsv = tsv_or_dir / f"{split}.tsv" if tsv_or_dir.is_dir() else tsv_or_dir
    if not tsv.exists():
        raise HloraError(f"{tsv}: Common Voice TSV not found")
    clips = tsv.parent / "clips"
    result = ImportResult()
    with tsv.open(encoding="utf-8", newline="") as f:
        reader = csv.DictReader(f, delimiter="\t", quoting=csv.QUOTE_NONE)
        missing = {"path", "sentence"} - set(reader.fieldnames or [])
        if missing:
            raise HloraError(
                f"{tsv}: missing column(s) {', '.join(sorted(missing))} (a Common Voice TSV has path, sentence, locale)"
            )
        if "locale" not in (reader.fieldnames or []) and lang is None:
            raise HloraError(f"{tsv}: no locale column; pass --lang")
        for row in reader:
            code = row.get("locale") or lang
            clip = Path(row["path"])
            if not code:
                result.rejected.append(Rejected({"id": clip.stem, "text": row["sentence"]}, "no locale"))
                continue
            result.utts.append(
                Utterance(
                    clip.stem,
                    str(clip if clip.is_absolute() else clips / clip),
                    code,
                    row["sentence"] or "",
                    speaker=row.get("client_id") or None,
                )
            )
    return result
