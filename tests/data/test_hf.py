"""Hugging Face datasets in: parquet (the hub's layouts), save_to_disk folders, audiofolders and hub
ids, written here with pyarrow in the layouts `datasets` writes. Audio held as bytes becomes 16 kHz
FLAC beside the manifest; audio held as files is referenced in place."""

import io
import json
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from hlora_cli.data.audio import load_audio
from hlora_cli.data.manifest import read_manifest
from tests.data.helpers import tone, write_audio
from tests.helpers import run_main_output

pa = pytest.importorskip("pyarrow")
import pyarrow.parquet as pq  # noqa: E402

AUDIO = pa.struct([("bytes", pa.binary()), ("path", pa.string())])  # datasets' Audio storage


def wav_bytes(seconds, sr=8000, channels=2):
    buf = io.BytesIO()
    sf.write(buf, tone(seconds, sr, channels), sr, format="WAV")
    return buf.getvalue()


def table(audio, texts, langs, ids=None):
    cols = {"audio": pa.array(audio, type=AUDIO), "sentence": texts, "locale": langs}
    if ids is not None:
        cols["id"] = ids
    return pa.table(cols)


def hlora(*args):
    code, out, err = run_main_output("prepare", "hf", *args)
    return code, out + err


def test_parquet_bytes_become_16k_flac_beside_the_manifest(tmp_path):
    data = tmp_path / "ds" / "data"
    data.mkdir(parents=True)
    train = table([{"bytes": wav_bytes(1.0), "path": "a.wav"}, {"bytes": b"not audio", "path": "b.wav"}],
                  ["Hello there", "broken"], ["en", "en"], ["u1", "u2"])  # fmt: skip
    pq.write_table(train, data / "train-00000-of-00001.parquet")
    pq.write_table(
        table([{"bytes": wav_bytes(0.5), "path": "c.wav"}], ["Hallo"], ["de"]), data / "test-00000-of-00001.parquet"
    )
    out = tmp_path / "m" / "train.jsonl"
    code, text = hlora(tmp_path / "ds", "-o", out, "--text-column", "sentence", "--lang-column", "locale")
    assert code == 2 and f"error: {tmp_path / 'ds'}: holds splits test, train: give --split" in text
    code, text = hlora(
        tmp_path / "ds", "-o", out, "--split", "train", "--text-column", "sentence", "--lang-column", "locale"
    )
    assert code == 0, text
    [row] = read_manifest(out)
    assert (row.id, row.lang, row.text, row.duration) == ("u1", "en", "Hello there", 1.0)
    assert row.audio == str(tmp_path / "m" / "train_audio" / "u1.flac")
    info = sf.info(row.audio)
    assert (info.samplerate, info.channels, info.format) == (16000, 1, "FLAC")
    rejected = [json.loads(x) for x in (tmp_path / "m" / "train.rejected.jsonl").read_text().splitlines()]
    assert [r["id"] for r in rejected] == ["u2"] and rejected[0]["reason"].startswith(
        "audio: the bytes of b.wav do not decode"
    )
    # the test split, without an id column: ids from the split and the index
    code, text = hlora(
        tmp_path / "ds", "-o", tmp_path / "t.jsonl", "--split", "test", "--text-column", "sentence", "--lang", "de"
    )
    assert code == 0, text
    assert [u.id for u in read_manifest(tmp_path / "t.jsonl")] == ["test-0000000"]


def test_save_to_disk_with_files_is_referenced_in_place(tmp_path):
    clip = write_audio(tmp_path / "clips" / "x.wav", 0.75)
    root = tmp_path / "saved"
    for split, rows in {"train": [str(clip), str(tmp_path / "clips" / "gone.wav")], "validation": [str(clip)]}.items():
        (root / split).mkdir(parents=True)
        t = pa.table({"audio": pa.array([{"bytes": None, "path": p} for p in rows], type=AUDIO),
                      "text": ["ein satz"] * len(rows), "speaker_id": list(range(len(rows)))})  # fmt: skip
        with pa.ipc.new_stream(str(root / split / "data-00000-of-00001.arrow"), t.schema) as w:
            w.write_table(t)
        (root / split / "state.json").write_text(
            json.dumps({"_data_files": [{"filename": "data-00000-of-00001.arrow"}]})
        )
    (root / "dataset_dict.json").write_text(json.dumps({"splits": ["train", "validation"]}))
    out = tmp_path / "m.jsonl"
    code, text = hlora(root, "-o", out, "--split", "train", "--lang", "de", "--speaker-column", "speaker_id")
    assert code == 0, text
    [row] = read_manifest(out)
    assert (row.id, row.audio, row.speaker, row.duration) == ("train-0000000", str(clip), "0", 0.75)
    assert not (tmp_path / "m_audio").exists()  # nothing copied
    reason = json.loads((tmp_path / "m.rejected.jsonl").read_text())["reason"]
    assert (
        reason == f"audio: {tmp_path / 'clips' / 'gone.wav'} not found (the dataset points at a file that is not there)"
    )
    code, text = hlora(root, "-o", out, "--split", "test", "--lang", "de")
    assert code == 2 and "no split 'test' (it holds train, validation)" in text


def test_audiofolder_and_hub_layout(tmp_path, monkeypatch):
    folder = tmp_path / "af"
    write_audio(folder / "clips" / "one.wav", 0.5)
    (folder / "metadata.csv").write_text("file_name,transcription,language\nclips/one.wav,bonjour,fr\n")
    code, text = hlora(
        folder, "-o", tmp_path / "af.jsonl", "--text-column", "transcription", "--lang-column", "language"
    )
    assert code == 0, text
    [row] = read_manifest(tmp_path / "af.jsonl")
    assert (row.audio, row.text, row.lang) == (str(folder / "clips" / "one.wav"), "bonjour", "fr")
    # a hub id: the hub's parquet conversion, CONFIG/SPLIT/0000.parquet
    hub = tmp_path / "hub"
    for config, lang in (("es_419", "Spanish"), ("en_us", "English")):
        (hub / config / "train").mkdir(parents=True)
        pq.write_table(table([{"bytes": wav_bytes(0.5, 16000, 1), "path": None}], ["hola"], [lang]),
                       hub / config / "train" / "0000.parquet")  # fmt: skip
    import huggingface_hub

    asked = []
    monkeypatch.setattr(huggingface_hub, "snapshot_download", lambda repo, **kw: asked.append((repo, kw)) or str(hub))
    out = tmp_path / "hub.jsonl"
    args = ("someone/speech", "-o", out, "--config", "es_419", "--text-column", "sentence", "--lang-column", "locale")
    code, text = hlora(*args)
    assert (
        code == 0
        and "'Spanish' is not a language code (map it: --lang-map 'Spanish=xx')"
        in (tmp_path / "hub.rejected.jsonl").read_text()
    )
    code, text = hlora(*args, "--lang-map", "Spanish=es")
    assert code == 0, text
    [row] = read_manifest(out)
    assert (row.lang, row.text, row.id) == ("es", "hola", "0000000")
    assert np.allclose(load_audio(row.audio), tone(0.5), atol=1e-3)  # 16-bit FLAC of the same samples
    assert asked[0][0] == "someone/speech" and asked[0][1]["repo_type"] == "dataset"


def test_bad_inputs_are_one_line_errors_and_write_nothing(tmp_path):
    data = tmp_path / "ds"
    data.mkdir()
    pq.write_table(table([{"bytes": wav_bytes(0.5), "path": "a.wav"}], ["x"], ["en"]), data / "train.parquet")
    out = tmp_path / "m.jsonl"
    code, text = hlora(data, "-o", out, "--lang", "en")
    assert (
        code == 2 and f"error: {data}: no column 'text' (columns: audio, sentence, locale); give --text-column" in text
    )
    code, text = hlora(data, "-o", out, "--text-column", "sentence")
    assert (
        code == 2 and "error: give --lang (one language for every row) or --lang-column (each row's), not both" in text
    )
    code, text = hlora(tmp_path / "empty-dir", "-o", out, "--lang", "en")
    assert code == 2 and "not a dataset folder, a .parquet file or a hub id" in text
    (tmp_path / "plain").mkdir()
    code, text = hlora(tmp_path / "plain", "-o", out, "--lang", "en")
    assert code == 2 and "not a dataset saved with save_to_disk, a folder of parquet files or an audiofolder" in text
    assert not out.exists() and not (tmp_path / "m_audio").exists()


def test_ids_made_alike_as_file_names_keep_files_of_their_own(tmp_path):
    data = tmp_path / "ds"
    data.mkdir()
    rows = [{"bytes": wav_bytes(0.5, 16000, 1), "path": None}, {"bytes": wav_bytes(0.75, 16000, 1), "path": None}]
    pq.write_table(table(rows, ["eins", "zwei"], ["de", "de"], ["a/b", "a_b"]), data / "train.parquet")
    code, text = hlora(data, "-o", tmp_path / "m.jsonl", "--text-column", "sentence", "--lang", "de")
    assert code == 0, text
    rows = {u.id: u for u in read_manifest(tmp_path / "m.jsonl")}
    assert Path(rows["a_b"].audio).name == "a_b.flac" and Path(rows["a/b"].audio).name.startswith("a_b-")
    assert [sf.info(rows[i].audio).duration for i in ("a/b", "a_b")] == [0.5, 0.75]
