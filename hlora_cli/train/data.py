"""From manifests to training examples: languages checked, long audio skipped, text encoded."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from hlora_cli.data.audio import segment_duration
from hlora_cli.data.batching import Example
from hlora_cli.data.langs import resolve_language
from hlora_cli.data.manifest import read_manifest
from hlora_cli.data.vocab import Vocab, norm_text
from hlora_cli.errors import HloraError
from text_normalization import normalize
from text_normalization.rules import strip_language_prefix


@dataclass
class Examples:
    examples: list[Example]
    skipped: Counter = field(default_factory=Counter)  # reason -> utterances
    unknown_chars: int = 0

    @property
    def durations(self) -> list[float]:
        return [e.utt.duration for e in self.examples]

    def batch(self, key: list) -> list[Example]:
        """A loaded batch's examples, from its key: indices into `examples`."""
        return [self.examples[i] for i in key]


class StreamedExamples(Examples):
    """Examples made as shards stream by (data/shards.py): only the counts are kept here, and a
    batch's key is its examples themselves."""

    def batch(self, key: list) -> list[Example]:
        return key


def no_head(source: str | Path, langs: str, languages: list[str]) -> HloraError:
    """The error for training data (a manifest, or shards) in languages the model has no head for."""
    return HloraError(
        f"{source}: utterances in language(s) {langs} have no head in this model ({', '.join(languages)}): "
        "add them to the vocab and --languages, or remove them"
    )


def shard_examples(maker: ExampleMaker, out: StreamedExamples) -> Callable[[dict, str], Example | None]:
    """How a shard's row becomes an example (None: skipped and counted in `out`)."""
    from hlora_cli.data.manifest import Utterance

    def make(row: dict, name: str) -> Example | None:
        lang = resolve_language(row["lang"], maker.languages)
        if lang is None:
            out.skipped["other language"] += 1
            return None
        fields = {k: row.get(k) for k in ("text_norm", "speaker", "duration")}
        return maker.make(Utterance(row["id"], name, lang, row["text"], **fields), lang, out)

    return make


def target_text(u, words: bool) -> str:
    """What a model learns to write for `u`: its normalized text, characters spaced apart for the
    languages scored by CER (a CTC head's units). With `words` (Whisper's decoder, whose tokenizer
    reads words: `保险` is one token, `保 险` two that Whisper never saw together), the normalized text
    as written, without that spacing; scoring spaces both sides alike."""
    if words:
        return normalize(u.text, u.lang, keep_words=True)
    return norm_text(u)


# Shorter clips give no frame (or one) to any encoder here (Whisper needs 20 ms, HuBERT 25 ms):
# skipped in training, as longer ones are, instead of failing the batch they land in.
MIN_SECONDS = 0.05


def load_examples(
    path: str | Path,
    vocab: Vocab,
    languages: list[str],
    shared_head: bool,
    max_duration: float,
    every_head: bool = False,
    only_languages: bool = False,
) -> Examples:
    """Examples with targets in the inventory of the head that trains on them. A shared inventory
    with `<xx>` prefix tokens gets every transcript started by its language's token (whether or not
    the manifest's text has it); otherwise a prefix in the text is dropped. With `every_head` (soft
    routing), each example also carries its transcript in every language's inventory. With
    `only_languages` (an expert), rows of other languages are skipped (and counted), so every
    expert trains on its rows of one multilingual manifest."""
    utts = read_manifest(path)
    if not utts:
        raise HloraError(f"{path}: manifest is empty")
    twice = [utt_id for utt_id, n in Counter(u.id for u in utts).items() if n > 1]
    if twice:  # as decode refuses them: results, checkpoints' skip lists and dev scores key by id
        raise HloraError(
            f"{path}: {len(twice)} utterance id(s) appear more than once (e.g. '{twice[0]}'); "
            "give each utterance its own id (`hlora prepare subset` drops repeats into OUT.rejected.jsonl)"
        )
    codes = {code: resolve_language(code, languages) for code in {u.lang for u in utts}}
    resolved = [codes[u.lang] for u in utts]
    other = 0
    if only_languages:
        other = sum(r is None for r in resolved)
        utts = [u for u, r in zip(utts, resolved, strict=True) if r is not None]
        resolved = [r for r in resolved if r is not None]
        if not utts:
            raise HloraError(f"{path}: no utterance in {', '.join(languages)}")
    missing = Counter(u.lang for u, r in zip(utts, resolved, strict=True) if r is None)
    if missing:
        raise no_head(path, ", ".join(f"{lang} ({n})" for lang, n in missing.most_common()), languages)
    maker = ExampleMaker(vocab, languages, shared_head, max_duration, every_head)
    out = Examples([])
    if other:
        out.skipped["other language"] = other
    for u, lang in zip(utts, resolved, strict=True):
        example = maker.make(u, lang, out)
        if example is not None:
            out.examples.append(example)
    if not out.examples:
        raise HloraError(f"{path}: no usable utterance ({dict(out.skipped)})")
    return out


class ExampleMaker:
    """A manifest row as a training example (targets in the inventory of the head that trains on
    it), or None with the reason counted: the one rule for manifests and streamed shards."""

    def __init__(
        self, vocab: Vocab, languages: list[str], shared_head: bool, max_duration: float, every_head: bool = False
    ) -> None:
        self.vocab, self.languages, self.shared_head = vocab, languages, shared_head
        self.max_duration, self.every_head = max_duration, every_head
        self.prefix = shared_head and vocab.has_prefix_tokens(languages)
        self.words = getattr(vocab, "word_targets", False)
        self.index = {lang: i for i, lang in enumerate(languages)}

    def make(self, u, lang: str, out: Examples) -> Example | None:
        """`u` in language `lang` (one of the model's), counted in `out` where it is skipped."""
        duration = u.duration if u.duration is not None else segment_duration(u.audio, u.start, u.end)
        if duration > self.max_duration:
            out.skipped["over max duration"] += 1
            return None
        if duration < MIN_SECONDS:  # one bad clip must not stop the run at its batch
            out.skipped[f"shorter than {MIN_SECONDS * 1000:.0f} ms"] += 1
            return None
        text = strip_language_prefix(target_text(u, self.words)).strip()
        if not text:
            out.skipped["empty text"] += 1
            return None
        ids, unknown = self.vocab.encode(f"<{lang}> {text}" if self.prefix else text, lang, shared=self.shared_head)
        out.unknown_chars += unknown
        every = [self.vocab.encode(text, other)[0] for other in self.languages] if self.every_head else None
        u.lang, u.duration = lang, duration  # the manifest's rows are ours: no copy of a million
        return Example(u, self.index[lang], ids, every)


def experts_vocab(experts: list) -> Vocab:
    """The inventories of models built from experts: each expert's own, and their union (the
    student's one head)."""
    from hlora_cli.model.experts import union_vocab

    languages = {e.lang: list(e.vocab) for e in experts}
    shared = union_vocab(experts) if not any(e.config.bpe_models for e in experts) else []
    bpe = {e.lang: e.config.bpe_models[e.lang] for e in experts if e.lang in e.config.bpe_models}
    return Vocab(languages, shared, bpe)
