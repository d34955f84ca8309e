"""Hugging Face datasets as manifest rows: a dataset written by `save_to_disk` (a DatasetDict's
split too), a folder of parquet files (a hub dataset's own, or its parquet conversion), an
audiofolder (audio files beside metadata.csv / metadata.jsonl), or a hub id where the user has
access. Read with pyarrow, the format `datasets` stores them in (datasets itself needs numpy 2,
which pyctcdecode's pin rules out). An Audio column holding bytes is decoded with soundfile and
written once as 16 kHz FLAC beside the manifest; one pointing at files is referenced in place."""

from __future__ import annotations

import hashlib
import io
import json
import os
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import soundfile as sf

from hlora_cli.data.audio import SAMPLE_RATE, mono_16k
from hlora_cli.data.importers import ImportResult, LanguageRule
from hlora_cli.data.manifest import Rejected, Utterance
from hlora_cli.errors import HloraError
from hlora_cli.files import safe_stem

METADATA = ("metadata.csv", "metadata.jsonl")  # an audiofolder's table: file_name + other columns
AUDIO_SUFFIXES = {".wav", ".flac", ".ogg", ".opus", ".mp3"}


@dataclass
class Columns:
    """Which column holds what (--text-column, --audio-column, --lang-column, ...)."""

    text: str = "text"
    audio: str = "audio"
    lang_column: str | None = None
    id: str | None = None  # default: "id" where the dataset has one, else the row's index
    speaker: str | None = None
    rule: LanguageRule = field(default_factory=LanguageRule)


@dataclass
class Table:
    """One split of a dataset: where it came from, its columns and its rows in batches."""

    name: str  # what errors call it
    columns: list[str]
    batches: Iterator[list[dict]]
    base: Path  # relative audio paths start here


def _pyarrow():
    try:
        import pyarrow as pa
        import pyarrow.parquet  # noqa: F401 (a submodule pa.parquet needs imported)
    except ImportError as e:
        raise HloraError(f"Hugging Face datasets need pyarrow: pip install 'hlora[data]' ({e})") from None
    return pa


def open_dataset(source: str, split: str | None = None, config: str | None = None) -> Table:
    """The split `split` of `source` (a folder, a .parquet file, or a hub id)."""
    path = Path(source)
    if path.is_file() and path.suffix == ".parquet":
        return _parquet([path], source, path.parent)
    if path.is_dir():
        if (path / "dataset_dict.json").is_file():
            splits = json.loads((path / "dataset_dict.json").read_text())["splits"]
            name = _one_split(source, splits, split)
            return _saved(path / name, f"{source} (split {name})")
        if (path / "state.json").is_file():
            return _saved(path, source)
        parquet = sorted(path.rglob("*.parquet"))
        if parquet:
            return _parquet(_split_files(source, path, parquet, split, config), source, path)
        folder = path / split if split and (path / split).is_dir() else path  # SPLIT/metadata.csv
        if any((folder / m).is_file() for m in METADATA):
            return _audiofolder(folder, source)
        raise HloraError(
            f"{source}: not a dataset saved with save_to_disk, a folder of parquet files or an audiofolder "
            "(audio files beside metadata.csv or metadata.jsonl)"
        )
    if path.exists() or source.startswith((".", "/")) or source.count("/") > 1:
        raise HloraError(f"{source}: not a dataset folder, a .parquet file or a hub id")
    return _from_hub(source, split, config)


def _one_split(source: str, splits: list[str], split: str | None) -> str:
    if split is None:
        if len(splits) == 1:
            return splits[0]
        raise HloraError(f"{source}: holds splits {', '.join(splits)}: give --split")
    if split not in splits:
        raise HloraError(f"{source}: no split {split!r} (it holds {', '.join(splits)})")
    return split


def _saved(folder: Path, name: str) -> Table:
    """A Dataset written by save_to_disk: Arrow stream files listed in state.json."""
    pa = _pyarrow()
    try:
        state = json.loads((folder / "state.json").read_text())
        files = [folder / f["filename"] for f in state["_data_files"]]
        readers = [pa.ipc.open_stream(pa.memory_map(str(f))) for f in files]
    except (OSError, KeyError, ValueError, pa.ArrowInvalid) as e:
        raise HloraError(f"{name}: not a readable save_to_disk dataset ({e})") from None
    columns = readers[0].schema.names if readers else []
    return Table(name, columns, (b.to_pylist() for r in readers for b in r), folder)


def _split_files(source: str, root: Path, files: list[Path], split: str | None, config: str | None) -> list[Path]:
    """The parquet files of one config and split, as the hub lays them out: CONFIG/SPLIT/*.parquet
    (its parquet conversion) or [data/]SPLIT-00000-of-00002.parquet."""
    if config is not None:
        files = [f for f in files if config in f.relative_to(root).parts[:-1]]
        if not files:
            raise HloraError(f"{source}: no parquet files of config {config!r}")
    splits = sorted({_split_of(f.relative_to(root)) for f in files} - {None})
    if split is None:
        if len(splits) > 1:
            raise HloraError(f"{source}: holds splits {', '.join(splits)}: give --split")
        return files
    chosen = [f for f in files if _split_of(f.relative_to(root)) == split]
    if not chosen:
        raise HloraError(f"{source}: no parquet files of split {split!r} (it holds {', '.join(splits) or 'one'})")
    return chosen


_SPLIT_FILE = re.compile(r"^([A-Za-z][\w.]*?)(?:[-_]\d+(?:-of-\d+)?)?$")


def _split_of(rel: Path) -> str | None:
    if rel.stem.isdigit():  # the hub's parquet conversion: CONFIG/SPLIT/0000.parquet
        return rel.parts[-2] if len(rel.parts) > 1 else None
    m = _SPLIT_FILE.match(rel.stem)  # SPLIT-00000-of-00002.parquet, SPLIT.parquet
    return m.group(1) if m else None


def _parquet(files: list[Path], name: str, base: Path) -> Table:
    pa = _pyarrow()
    try:
        readers = [pa.parquet.ParquetFile(str(f)) for f in files]
    except (OSError, pa.ArrowInvalid) as e:
        raise HloraError(f"{name}: not a readable parquet file ({e})") from None
    columns = readers[0].schema_arrow.names
    for f, r in zip(files, readers, strict=True):
        if r.schema_arrow.names != columns:
            raise HloraError(f"{f}: its columns ({', '.join(r.schema_arrow.names)}) differ from {files[0]}'s")
    return Table(name, columns, (b.to_pylist() for r in readers for b in r.iter_batches(batch_size=256)), base)


def _audiofolder(folder: Path, name: str) -> Table:
    """Audio files beside metadata.csv / metadata.jsonl, whose file_name column names them."""
    pa = _pyarrow()
    from pyarrow import csv
    from pyarrow import json as pa_json

    meta = next(folder / m for m in METADATA if (folder / m).is_file())
    try:
        table = (csv.read_csv if meta.suffix == ".csv" else pa_json.read_json)(str(meta))
    except (OSError, pa.ArrowInvalid) as e:
        raise HloraError(f"{meta}: not a readable table ({e})") from None
    if "file_name" not in table.column_names:
        raise HloraError(f"{meta}: no file_name column (an audiofolder's table names each audio file there)")
    rows = table.to_pylist()
    for row in rows:
        row["audio"] = row.pop("file_name")
    return Table(
        f"{name} ({meta.name})", ["audio", *(c for c in table.column_names if c != "file_name")], iter([rows]), folder
    )


def _from_hub(repo: str, split: str | None, config: str | None) -> Table:
    """A hub dataset's parquet files (its own, or the hub's parquet conversion of it)."""
    try:
        from huggingface_hub import snapshot_download
    except ImportError as e:
        raise HloraError(f"{repo}: a hub id needs huggingface_hub: pip install huggingface_hub ({e})") from None
    errors = []
    for revision in (None, "refs/convert/parquet"):
        try:
            folder = Path(snapshot_download(repo, repo_type="dataset", revision=revision, allow_patterns="*.parquet"))
        except Exception as e:  # the hub's errors: no such repo, gated, offline
            errors.append(f"{type(e).__name__}: {e}")
            continue
        files = sorted(folder.rglob("*.parquet"))
        if files:
            return _parquet(_split_files(repo, folder, files, split, config), repo, folder)
    why = "; ".join(errors) or "it holds no parquet files"
    raise HloraError(f"{repo}: not a local dataset, and the hub did not give its parquet files ({why})")


def check_columns(table: Table, columns: Columns) -> None:
    """Every column asked for is there, before anything is written."""
    wanted = {"--text-column": columns.text, "--audio-column": columns.audio}
    wanted |= {"--lang-column": columns.lang_column, "--id-column": columns.id, "--speaker-column": columns.speaker}
    for flag, name in wanted.items():
        if name is not None and name not in table.columns:
            raise HloraError(f"{table.name}: no column {name!r} (columns: {', '.join(table.columns)}); give {flag}")


def import_hf(table: Table, columns: Columns, audio_dir: Path, split: str | None = None) -> ImportResult:
    """One row per dataset row; audio held as bytes is written to `audio_dir` as 16 kHz FLAC."""
    check_columns(table, columns)
    id_column = columns.id or ("id" if "id" in table.columns else None)
    result, index = ImportResult(), 0
    for batch in table.batches:
        for row in batch:
            utt_id = str(row[id_column]) if id_column else f"{split + '-' if split else ''}{index:07d}"
            index += 1
            try:
                result.utts.append(_row(row, utt_id, columns, table.base, audio_dir))
            except ValueError as e:
                kept = {k: v for k, v in row.items() if k != columns.audio and isinstance(v, (str, int, float))}
                result.rejected.append(Rejected({"id": utt_id, **kept}, str(e)))
    return result


def _row(row: dict, utt_id: str, columns: Columns, base: Path, audio_dir: Path) -> Utterance:
    text = row[columns.text]
    if not isinstance(text, str):
        raise ValueError(f"text: {columns.text} is {text!r}, not a string")
    lang = columns.rule.language(row[columns.lang_column] if columns.lang_column else None)
    audio, duration = _audio(row[columns.audio], utt_id, base, audio_dir)
    speaker = row[columns.speaker] if columns.speaker else None
    return Utterance(utt_id, audio, lang, text, duration=duration, speaker=None if speaker is None else str(speaker))


def _audio(value: object, utt_id: str, base: Path, audio_dir: Path) -> tuple[str, float | None]:
    """(path, duration or None): the file a row points at, or its bytes written as FLAC."""
    data, path = (value.get("bytes"), value.get("path")) if isinstance(value, dict) else (None, value)
    if data:
        try:
            x, sr = sf.read(io.BytesIO(data), dtype="float32", always_2d=True)
        except (sf.LibsndfileError, RuntimeError, TypeError) as e:
            raise ValueError(f"audio: the bytes of {path or 'the row'} do not decode ({e})") from None
        if x.shape[0] == 0 or not np.isfinite(x).all():
            raise ValueError("audio: no samples, or NaN / infinite samples")
        samples = mono_16k(x, sr)
        return str(_write_flac(samples, audio_dir / f"{_file_name(utt_id)}.flac")), len(samples) / SAMPLE_RATE
    if not isinstance(path, str) or not path:
        raise ValueError("audio: the row holds neither bytes nor a path")
    file = Path(path) if Path(path).is_absolute() else base / path
    if not file.is_file():
        raise ValueError(f"audio: {file} not found (the dataset points at a file that is not there)")
    return str(file), None


def _file_name(utt_id: str) -> str:
    """The id itself where it is a safe file name; else made safe, with a hash of the id so that
    two ids made alike ("a/b", "a_b") never share a file."""
    stem = safe_stem(utt_id)
    if stem and stem == utt_id:
        return stem
    return f"{stem}-{hashlib.sha256(utt_id.encode('utf-8')).hexdigest()[:12]}"


def _write_flac(samples: np.ndarray, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    try:
        sf.write(str(tmp), samples, SAMPLE_RATE, format="FLAC")
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    return path
