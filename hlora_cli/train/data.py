"""From manifests to training examples: languages checked, long audio skipped, text encoded."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field, replace
from pathlib import Path

from hlora_cli.data.audio import audio_info
from hlora_cli.data.batching import Example
from hlora_cli.data.langs import resolve_language
from hlora_cli.data.manifest import read_manifest
from hlora_cli.data.vocab import Vocab, norm_text
from hlora_cli.errors import HloraError


@dataclass
class Examples:
    examples: list[Example]
    skipped: Counter = field(default_factory=Counter)  # reason -> utterances
    unknown_chars: int = 0

    @property
    def durations(self) -> list[float]:
        return [e.utt.duration for e in self.examples]


def load_examples(
    path: str | Path, vocab: Vocab, languages: list[str], shared_head: bool, max_duration: float
) -> Examples:
    utts = read_manifest(path)
    if not utts:
        raise HloraError(f"{path}: manifest is empty")
    resolved = [resolve_language(u.lang, languages) for u in utts]
    missing = Counter(u.lang for u, r in zip(utts, resolved, strict=True) if r is None)
    if missing:
        langs = ", ".join(f"{lang} ({n})" for lang, n in missing.most_common())
        raise HloraError(
            f"{path}: utterances in language(s) {langs} have no head in this model ({', '.join(languages)}): "
            "add them to the vocab and --languages, or remove them"
        )
    out = Examples([])
    for u, lang in zip(utts, resolved, strict=True):
        duration = u.duration
        if duration is None:
            duration = (u.end - (u.start or 0.0)) if u.end is not None else audio_info(u.audio).duration
        if duration > max_duration:
            out.skipped["over max duration"] += 1
            continue
        ids, unknown = vocab.encode(norm_text(u), lang, shared=shared_head)
        if not ids:
            out.skipped["empty text"] += 1
            continue
        out.unknown_chars += unknown
        out.examples.append(Example(replace(u, lang=lang, duration=duration), languages.index(lang), ids))
    if not out.examples:
        raise HloraError(f"{path}: no usable utterance ({dict(out.skipped)})")
    return out
