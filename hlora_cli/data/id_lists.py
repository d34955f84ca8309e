"""Utterance-id lists: select the same utterances a paper used (its published `utt_id` lists).

A list file holds one utterance a line; only the first whitespace-separated field counts, so a
plain id list, a Kaldi/ESPnet `text`, `wav.scp`, `segments` or `utt2spk` all serve as lists."""

from __future__ import annotations

from pathlib import Path

from hlora_cli.data.importers import ImportResult, read_lines
from hlora_cli.data.manifest import Rejected, Utterance
from hlora_cli.errors import HloraError

NOT_LISTED = "not in --ids"


def read_id_list(path: Path) -> set[str]:
    """The ids of one list file; an empty file is an error (it would select nothing)."""
    ids = {line.split(maxsplit=1)[0] for line in read_lines(path) if line.strip()}
    if not ids:
        raise HloraError(f"{path}: no utterance ids in this list")
    return ids


def select_ids(utts: list[Utterance], lists: list[Path]) -> tuple[ImportResult, int]:
    """(the rows whose id is listed, the others rejected with reason NOT_LISTED; the number of
    listed ids found in no row). Listing ids of which none is in the manifest is an error: the id
    scheme differs (e.g. lists from another data preparation), and training on nothing is never meant."""
    wanted: set[str] = set()
    for path in lists:
        wanted |= read_id_list(path)
    kept = [u for u in utts if u.id in wanted]
    if not kept:
        example = next(iter(sorted(wanted)))
        raise HloraError(
            f"{lists[0]}: none of the {len(wanted)} listed ids is in the manifest (e.g. {example!r}); "
            "do the lists use the same utterance-id scheme as the import?"
        )
    rejected = [Rejected(u, NOT_LISTED) for u in utts if u.id not in wanted]
    return ImportResult(kept, rejected), len(wanted) - len(kept)


NOT_SAMPLED = "not in the --per-language sample"


def sample_per_language(result: ImportResult, n: int, seed: int = 0) -> ImportResult:
    """At most `n` rows of each language, drawn at random (seeded) and kept in the input's order;
    the others are rejected with reason NOT_SAMPLED."""
    import random

    rng = random.Random(seed)
    by_lang: dict[str, list[int]] = {}
    for i, u in enumerate(result.utts):
        by_lang.setdefault(u.lang, []).append(i)
    keep: set[int] = set()
    for lang in sorted(by_lang):
        rows = by_lang[lang]
        keep.update(rows if len(rows) <= n else rng.sample(rows, n))
    out = ImportResult(rejected=list(result.rejected))
    for i, u in enumerate(result.utts):
        if i in keep:
            out.utts.append(u)
        else:
            out.rejected.append(Rejected(u, NOT_SAMPLED))
    return out
