"""`hlora prepare ...`: corpus importers, the way back to Kaldi, and token inventories."""

from __future__ import annotations

from pathlib import Path

import typer
from rich.console import Console
from rich.table import Table

from hlora_cli.data.importers import ImportResult, ImportSummary, rejected_path, write_import
from hlora_cli.data.manifest import Utterance, read_manifest
from hlora_cli.errors import HloraError

app = typer.Typer(
    help="Turn a corpus on disk into a validated JSONL manifest (and back), build token inventories.",
    no_args_is_help=True,
)
console = Console()

# What a Kaldi data dir holds that `prepare kaldi` reads: an output may be none of them.
KALDI_INPUTS = ("wav.scp", "text", "segments", "utt2spk", "utt2lang")
OUT = typer.Option(..., "-o", "--out", help="Manifest to write (JSONL); rejected rows go to OUT.rejected.jsonl.")
LANGS = typer.Option(None, "--languages", help="Comma-separated language set; rows in other languages are rejected.")
MAXDUR = typer.Option(30.0, "--max-duration", help="Reject utterances longer than this (seconds).")


def _languages(value: str | None) -> list[str] | None:
    from hlora_cli.data.langs import language_list

    return language_list(value)


def print_summary(s: ImportSummary) -> None:
    table = Table(title=f"{s.manifest}")
    table.add_column("language")
    table.add_column("utterances", justify="right")
    table.add_column("hours", justify="right")
    for lang, (n, hours) in s.per_language.items():
        table.add_row(lang, str(n), f"{hours:.3f}")
    n, hours = s.total
    table.add_row("[bold]total", f"[bold]{n}", f"[bold]{hours:.3f}")
    console.print(table)
    if s.rejected:
        rej = Table(title=f"rejected -> {s.rejected_file}")
        rej.add_column("reason")
        rej.add_column("rows", justify="right")
        for reason, count in sorted(s.rejected.items(), key=lambda x: -x[1]):
            rej.add_row(reason, str(count))
        console.print(rej)
    else:
        console.print("rejected: none")


def _check_out(out: Path, inputs: list[Path]) -> None:
    """OUT and OUT.rejected.jsonl (written, or removed when nothing is rejected) apart from the
    files the importer reads; checked before any work."""
    from hlora_cli.files import check_output

    check_output(out, inputs, "manifest")
    check_output(rejected_path(out), inputs, "rejected rows' file")


def _write_manifest(result: ImportResult, out: Path, languages: list[str] | None, max_duration: float) -> None:
    """Write what an importer found; no output may be an audio file a row lists."""
    from hlora_cli.files import check_not_listed

    rows = [*result.utts, *(r.utt for r in result.rejected)]
    listed = (u.audio if isinstance(u, Utterance) else str(u.get("audio", "")) for u in rows)
    check_not_listed([out, rejected_path(out)], listed)
    print_summary(write_import(result, out, languages, max_duration))


@app.command()
def kaldi(
    data_dir: Path = typer.Argument(..., help="Kaldi data dir: wav.scp, text, [segments, utt2spk, utt2lang]."),
    out: Path = OUT,
    lang: str = typer.Option(None, "--lang", help="Language of every utterance (without utt2lang)."),
    lang_from_id: bool = typer.Option(
        False, "--lang-from-id", help="Language = utterance id prefix before '_' or '-'."
    ),
    allow_pipes: bool = typer.Option(
        False, "--allow-pipes", help="Run 'cmd |' entries of wav.scp (audio cached as wav)."
    ),
    audio_root: Path = typer.Option(
        None,
        "--audio-root",
        help="Folder that relative wav.scp paths start from (Kaldi recipes: where run.sh runs); default: the data dir.",
    ),
    languages: str = LANGS,
    max_duration: float = MAXDUR,
) -> None:
    """Import a Kaldi / ESPnet data directory."""
    from hlora_cli.data.importers.kaldi import import_kaldi

    langs = _languages(languages)
    _check_out(out, [data_dir / name for name in KALDI_INPUTS])
    if audio_root is not None and not audio_root.is_dir():
        raise HloraError(f"--audio-root {audio_root}: not a directory")
    cache = out.parent / f"{out.stem}_pipe_audio"
    result = import_kaldi(data_dir, lang, lang_from_id, allow_pipes, cache, audio_root)
    _write_manifest(result, out, langs, max_duration)


@app.command("export-kaldi")
def export_kaldi_cmd(
    manifest: Path = typer.Argument(..., help="JSONL manifest."),
    out_dir: Path = typer.Argument(..., help="Kaldi data dir to write."),
) -> None:
    """Write a manifest as a Kaldi data dir (wav.scp, text, segments, utt2spk, spk2utt, utt2lang).
    Files of an earlier export that this one does not write (e.g. segments) are removed."""
    from hlora_cli.data.importers.kaldi import check_kaldi_dir, export_kaldi

    check_kaldi_dir(out_dir)
    done = export_kaldi(read_manifest(manifest), out_dir)
    console.print(f"wrote {', '.join(p.name for p in done.written)} to {out_dir}")
    if done.removed:
        console.print(f"removed {', '.join(p.name for p in done.removed)} (from an earlier export)")
    if done.unmatched:
        names = ", ".join(p.name for p in done.unmatched)
        console.print(f"[yellow]note:[/] {out_dir} also holds {names}, made from earlier data: they may not match")


@app.command()
def lhotse(
    manifests: list[Path] = typer.Argument(
        ..., help="CUTS, or RECORDINGS SUPERVISIONS: lhotse manifests (.jsonl, .jsonl.gz; a lhotse recipe's output)."
    ),
    out: Path = OUT,
    lang: str = typer.Option(None, "--lang", help="Language of every row (instead of each supervision's)."),
    lang_map: str = typer.Option(
        None, "--lang-map", help="Supervision languages that are names, as codes: 'English=en,Mandarin=zh'."
    ),
    languages: str = LANGS,
    max_duration: float = MAXDUR,
) -> None:
    """Import lhotse manifests: one row per supervision, segments of longer recordings read in place."""
    from hlora_cli.data.importers.lhotse_manifests import import_lhotse

    langs = _languages(languages)
    _check_out(out, manifests)
    _write_manifest(import_lhotse(manifests, lang, _pairs(lang_map, "--lang-map")), out, langs, max_duration)


@app.command()
def hf(
    source: str = typer.Argument(
        ..., help="save_to_disk folder, folder of parquet files, .parquet file, audiofolder, or hub id."
    ),
    out: Path = OUT,
    split: str = typer.Option(None, "--split", help="Split to import (train, test, ...) where there are several."),
    config: str = typer.Option(None, "--config", help="Config (subset) of a hub dataset, e.g. en_us."),
    text_column: str = typer.Option("text", "--text-column", help="Column of the transcripts."),
    audio_column: str = typer.Option("audio", "--audio-column", help="Column of the audio (bytes or a path)."),
    lang: str = typer.Option(None, "--lang", help="Language of every row."),
    lang_column: str = typer.Option(None, "--lang-column", help="Column of each row's language."),
    lang_map: str = typer.Option(None, "--lang-map", help="Language names as codes: 'English=en,Mandarin=zh'."),
    id_column: str = typer.Option(None, "--id-column", help="Column of utterance ids (default: id, else the index)."),
    speaker_column: str = typer.Option(None, "--speaker-column", help="Column of speaker ids."),
    languages: str = LANGS,
    max_duration: float = MAXDUR,
) -> None:
    """Import a Hugging Face dataset; audio held as bytes is written as 16 kHz FLAC to OUT's folder
    (OUT_audio/), audio held as files is referenced in place."""
    from hlora_cli.data.importers import LanguageRule
    from hlora_cli.data.importers.hf import Columns, import_hf, open_dataset

    if (lang is None) == (lang_column is None):
        raise HloraError("give --lang (one language for every row) or --lang-column (each row's), not both")
    langs = _languages(languages)
    rule = LanguageRule.of(lang, _pairs(lang_map, "--lang-map"))
    columns = Columns(text_column, audio_column, lang_column, id_column, speaker_column, rule)
    _check_out(out, [Path(source)])
    table = open_dataset(source, split, config)
    result = import_hf(table, columns, out.parent / f"{out.stem}_audio", split)
    _write_manifest(result, out, langs, max_duration)


@app.command()
def shards(
    manifest: Path = typer.Argument(..., help="JSONL manifest."),
    out: Path = typer.Option(..., "-o", "--out", help="New folder: shard-000000.tar, ... and shards.json."),
    shard_size: int = typer.Option(1000, "--shard-size", help="Utterances per shard."),
    shuffle: bool = typer.Option(True, "--shuffle/--no-shuffle", help="Mix the rows before sharding (seeded)."),
    seed: int = typer.Option(0, "--seed"),
) -> None:
    """Write a manifest as tar shards (webdataset's layout: KEY.flac at 16 kHz + KEY.json) for
    `hlora train --train OUT/`, which streams them. Unreadable audio goes to OUT/rejected.jsonl."""
    from hlora_cli.data.manifest import write_rejected
    from hlora_cli.data.shards import write_shards
    from hlora_cli.files import check_output_dir

    check_output_dir(out, overwrite=False, what="shard folder", inputs=[manifest])
    index, rejected = write_shards(read_manifest(manifest), out, shard_size, shuffle, seed)
    if rejected:
        write_rejected(out / "rejected.jsonl", rejected)
    console.print(
        f"wrote {len(index.shards)} shard(s) to {out}: {index.utterances} utterances, "
        f"{index.seconds / 3600:.3f} h ({', '.join(index.languages)})"
    )
    if rejected:
        console.print(f"[yellow]rejected {len(rejected)}[/] (unreadable audio) -> {out / 'rejected.jsonl'}")


@app.command("to-lhotse")
def to_lhotse(
    manifest: Path = typer.Argument(..., help="JSONL manifest."),
    out_dir: Path = typer.Argument(..., help="Folder for recordings.jsonl.gz, supervisions.jsonl.gz, cuts.jsonl.gz."),
) -> None:
    """Write a manifest as lhotse manifests (k2/icefall and lhotse's loaders read them); the audio stays in place."""
    from hlora_cli.data.importers.lhotse_manifests import OUT_FILES, export_lhotse
    from hlora_cli.files import check_output

    for name in OUT_FILES:
        check_output(out_dir / name, [manifest], "lhotse manifest")
    written = export_lhotse(read_manifest(manifest), out_dir)
    console.print(f"wrote {', '.join(p.name for p in written)} to {out_dir}")


def _pairs(value: str | None, flag: str) -> dict[str, str]:
    """'a=b,c=d' as {a: b, c: d}."""
    pairs = {}
    for item in filter(None, (x.strip() for x in (value or "").split(","))):
        key, sep, code = item.partition("=")
        if not sep or not key.strip() or not code.strip():
            raise HloraError(f"{flag} {value!r}: expected NAME=CODE pairs separated by commas, e.g. English=en")
        pairs[key.strip()] = code.strip()
    return pairs


@app.command("mlc-slm")
def mlc_slm(
    root: Path = typer.Argument(..., help="MLC-SLM data root (English/<accent>/, French/, ... with .wav + .txt)."),
    out: Path = OUT,
    languages: str = LANGS,
    max_duration: float = MAXDUR,
) -> None:
    """Import the MLC-SLM 2025 challenge layout: one row per time-stamped segment."""
    from hlora_cli.data.importers.mlc_slm import import_mlc_slm

    langs = _languages(languages)
    _check_out(out, sorted(root.rglob("*.txt")) if root.is_dir() else [])  # the segment transcripts
    _write_manifest(import_mlc_slm(root), out, langs, max_duration)


@app.command()
def folder(
    directory: Path = typer.Argument(..., help="Folder of audio files with same-named .txt transcripts."),
    lang: str = typer.Option(..., "--lang", help="Language of the folder."),
    out: Path = OUT,
    max_duration: float = MAXDUR,
) -> None:
    """Import a folder of audio files with same-named .txt transcripts."""
    from hlora_cli.data.importers.folder import audio_files, import_folder

    if directory.is_dir():  # the folder's audio and transcripts are its inputs
        _check_out(out, [p for _, a in audio_files(directory) for p in (a, a.with_suffix(".txt"))])
    _write_manifest(import_folder(directory, lang), out, None, max_duration)


@app.command("deeply-ko")
def deeply_ko(
    root: Path = typer.Argument(..., help="The Korean-Read-Speech-Corpus folder (or its dataset/ folder)."),
    out: Path = OUT,
    max_duration: float = MAXDUR,
) -> None:
    """Import the Deeply Korean Read Speech Corpus (3 rooms x 3 distances x 2 phones, 2 readers)."""
    from hlora_cli.data.importers.deeply_ko import TRANSCRIPTS, import_deeply_ko

    _check_out(out, [root / TRANSCRIPTS, root / "dataset" / TRANSCRIPTS])
    _write_manifest(import_deeply_ko(root), out, None, max_duration)


@app.command("magicdata-tts")
def magicdata_tts(
    root: Path = typer.Argument(..., help="Corpus folder holding ProsodyLabeling/ and Wave/."),
    out: Path = OUT,
    lang: str = typer.Option("zh", "--lang", help="Language of the corpus."),
    max_duration: float = MAXDUR,
) -> None:
    """Import a Magic Data Mandarin TTS corpus (prosody marks #1-#4 removed, 48 kHz audio read at 16 kHz)."""
    from hlora_cli.data.importers.magicdata_tts import import_magicdata_tts
    from hlora_cli.data.langs import language_code

    _check_out(out, sorted((root / "ProsodyLabeling").glob("*.txt")))
    _write_manifest(import_magicdata_tts(root, language_code(lang, "--lang")), out, None, max_duration)


@app.command()
def split(
    manifest: Path = typer.Argument(..., help="Manifest to split."),
    out: Path = typer.Option(..., "-o", "--out", help="Manifest of the training side."),
    test_out: Path = typer.Option(..., "--test-out", help="Manifest of the held-out side."),
    by: str = typer.Option("text", "--by", help="Keep whole: text (each sentence), speaker or id."),
    test_fraction: float = typer.Option(0.2, "--test-fraction", help="Share of the groups held out, per language."),
    seed: int = typer.Option(0, help="Seed of the draw."),
) -> None:
    """Split a manifest into train and test with no sentence (or speaker) on both sides."""
    from hlora_cli.data.split import split_groups

    _check_out(out, [manifest])
    _check_out(test_out, [manifest, out, rejected_path(out)])
    train, test = split_groups(read_manifest(manifest), by, test_fraction, seed)
    write_import(ImportResult(train), out)
    write_import(ImportResult(test), test_out)
    for side, rows in (("train", train), ("test", test)):
        groups = len({(u.lang, u.text_norm or u.text) for u in rows}) if by == "text" else None
        console.print(f"{side}: {len(rows)} utterances" + (f", {groups} sentences" if groups is not None else ""))


@app.command()
def cv(
    tsv_or_dir: Path = typer.Argument(..., help="A Common Voice TSV, or a release folder (with --split)."),
    out: Path = OUT,
    split: str = typer.Option("train", help="TSV to read from a release folder (train, dev, test, validated)."),
    lang: str = typer.Option(None, "--lang", help="Language, for TSVs without a locale column."),
    languages: str = LANGS,
    max_duration: float = MAXDUR,
) -> None:
    """Import a Common Voice release TSV (path, sentence, locale)."""
    from hlora_cli.data.importers.cv import import_cv

    langs = _languages(languages)
    tsv = tsv_or_dir / f"{split}.tsv" if tsv_or_dir.is_dir() else tsv_or_dir
    _check_out(out, [tsv])
    _write_manifest(import_cv(tsv_or_dir, split, lang), out, langs, max_duration)


@app.command()
def vocab(
    manifest: Path = typer.Argument(..., help="Training manifest (text_norm used where present)."),
    out: Path = typer.Option(..., "-o", "--out", help="vocab.json to write."),
    coverage_of: list[Path] = typer.Option([], "--coverage", help="Dev/test manifest(s) to report coverage for."),
    prefix_tokens: bool = typer.Option(
        False, "--prefix-tokens", help="Add <xx> language tokens to the shared inventory."
    ),
    min_count: int = typer.Option(1, help="Keep characters seen at least this often."),
    unit: str = typer.Option("char", help="char or bpe (sentencepiece; ja/ko/th/zh stay characters)."),
    bpe_size: int = typer.Option(500, help="bpe: pieces per sentencepiece model (at most)."),
    bpe_cer_languages: bool = typer.Option(
        False, "--bpe-cer-languages", help="bpe: also for ja/ko/th/zh (scored by CER)."
    ),
) -> None:
    """Per-language inventories (characters or BPE) plus the shared one, and a coverage report."""
    from hlora_cli.data.vocab import build_vocab, coverage
    from hlora_cli.files import check_output

    check_output(out, [manifest, *coverage_of], "vocabulary")
    if unit not in ("char", "bpe"):
        raise HloraError(f"--unit {unit}: choose char or bpe")
    if unit == "bpe" and bpe_size < 2:
        raise HloraError(f"--bpe-size {bpe_size}: need at least 2 pieces")
    missing = [str(p) for p in coverage_of if not p.is_file()]
    if missing:
        raise HloraError(f"{missing[0]}: coverage manifest not found")
    utts = read_manifest(manifest)
    if not utts:
        raise HloraError(f"{manifest}: manifest is empty")
    v = build_vocab(
        utts,
        prefix_tokens=prefix_tokens,
        min_count=min_count,
        unit=unit,
        bpe_size=bpe_size,
        bpe_cer_languages=bpe_cer_languages,
    )
    v.save(out)
    table = Table(title=f"{out}")
    table.add_column("language")
    table.add_column("tokens", justify="right")
    table.add_column("unit")
    for lang, tokens in v.languages.items():
        table.add_row(lang, str(len(tokens)), "bpe" if lang in v.bpe else "char")
    table.add_row("[bold]shared", f"[bold]{len(v.shared)}", "bpe + char" if "shared" in v.bpe else "char")
    console.print(table)
    for path in coverage_of:
        cov = Table(title=f"coverage of {path}")
        for col in ("language", "characters", "covered", "not covered (most frequent)"):
            cov.add_column(col)
        for lang, r in sorted(coverage(read_manifest(path), v).items()):
            missing = (
                "no inventory"
                if r["no_inventory"]
                else " ".join(f"{c}×{n}" for c, n in list(r["missing"].items())[:10])
            )
            cov.add_row(lang, str(r["chars"]), f"{100 * r['covered']:.2f}%", missing)
        console.print(cov)


@app.command()
def synth(
    text: list[str] = typer.Option(..., "--text", help="LANG=FILE of sentences (one a line); repeatable."),
    out_dir: Path = typer.Option(..., "-o", "--out", help="Folder for the WAVs and manifest.jsonl."),
    split: str = typer.Option("train", help="train or test: test voices are never used for training."),
    per_language: int = typer.Option(60, help="Utterances per language."),
    seed: int = typer.Option(0),
    jobs: int = typer.Option(2, help="Synthesisers running at once."),
    jtalk_voice: Path = typer.Option(None, help="Open JTalk .htsvoice, for Japanese."),
) -> None:
    """Synthesise a speech corpus with espeak-ng (and Open JTalk for ja), 16 kHz mono, with a manifest."""
    from hlora_cli.data.importers import read_lines
    from hlora_cli.data.langs import language_files
    from hlora_cli.data.synth import synth_corpus

    texts = {lang: read_lines(Path(path)) for lang, path in language_files(text, "--text", "en=en.txt").items()}
    utts = synth_corpus(texts, split, per_language, out_dir, seed, jobs, jtalk_voice)
    _write_manifest(ImportResult(utts), out_dir / "manifest.jsonl", None, 30.0)


@app.command()
def subset(
    manifest: Path = typer.Argument(..., help="Manifest to filter."),
    out: Path = OUT,
    languages: str = typer.Option(None, "--languages", help="Comma-separated languages to keep."),
    ids: list[Path] = typer.Option(
        None,
        "--ids",
        help="Keep only the utterances listed here (first field of each line: an id list, Kaldi text, "
        "wav.scp or utt2spk); repeatable.",
    ),
    per_language: int = typer.Option(
        None, "--per-language", help="Keep at most N utterances of each language, drawn at random (--seed)."
    ),
    seed: int = typer.Option(0, help="Seed of the --per-language draw."),
    max_duration: float = MAXDUR,
) -> None:
    """Keep the utterances in the given languages and/or id lists, or a random sample of each
    language (the others go to OUT.rejected.jsonl)."""
    from hlora_cli.data.id_lists import sample_per_language, select_ids

    if not languages and not ids and per_language is None:
        raise HloraError("prepare subset: give --languages, --ids, --per-language or a combination")
    if per_language is not None and per_language < 1:
        raise HloraError(f"--per-language {per_language}: keep at least 1")
    _check_out(out, [manifest, *(ids or [])])
    langs = _languages(languages)
    result = ImportResult(read_manifest(manifest))
    if ids:
        result, missing = select_ids(result.utts, ids)
        if missing:
            console.print(f"[yellow]note:[/] {missing} listed id(s) are not in {manifest}")
    if per_language is not None:
        result = sample_per_language(result, per_language, seed)
    _write_manifest(result, out, langs, max_duration)
