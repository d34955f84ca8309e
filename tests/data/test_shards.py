"""Tar shards: written whole (webdataset's layout, the index last), streamed in a seeded order split
across ranks, every utterance once an epoch, resumable mid-epoch, and training from them."""

import io
import json
import tarfile

import numpy as np
import pytest
import soundfile as sf

from hlora_cli.data.audio import load_audio
from hlora_cli.data.manifest import Utterance, write_manifest
from hlora_cli.data.shards import INDEX, ShardIndex, ShardStream, read_shard
from hlora_cli.errors import HloraError
from tests.data.helpers import write_audio
from tests.helpers import run_main_output


class Row:
    def __init__(self, meta):
        self.utt = Utterance(meta["id"], "x", meta["lang"], meta["text"], duration=meta["duration"])


def corpus(tmp_path, n=7):
    utts = []
    for i in range(n):
        path = write_audio(tmp_path / "audio" / f"u{i}.wav", 0.5 + 0.25 * (i % 3), sr=8000 if i == 2 else 16000)
        utts.append(Utterance(f"u{i}", str(path), "en" if i % 2 else "de", f"text {i}", speaker=f"s{i % 2}"))
    long = write_audio(tmp_path / "audio" / "long.wav", 3.0)
    utts.append(Utterance("seg", str(long), "en", "a segment", start=1.0, end=2.0))
    utts.append(Utterance("gone", str(tmp_path / "audio" / "missing.wav"), "en", "no audio"))
    return write_manifest(tmp_path / "m.jsonl", utts), utts


def test_shards_hold_every_readable_utterance_as_16k_flac(tmp_path):
    manifest, utts = corpus(tmp_path)
    code, out, err = run_main_output("prepare", "shards", manifest, "-o", tmp_path / "sh", "--shard-size", "3")
    assert code == 0, err
    assert "wrote 3 shard(s)" in out and "8 utterances" in out and "rejected 1" in out
    index = ShardIndex.load(tmp_path / "sh")
    assert [s.utterances for s in index.shards] == [3, 3, 2] and index.languages == ["de", "en"]
    assert json.loads((tmp_path / "sh" / "rejected.jsonl").read_text())["id"] == "gone"
    with tarfile.open(tmp_path / "sh" / "shard-000000.tar") as tar:
        names = tar.getnames()
    assert names[:2] == ["000000000.json", "000000000.flac"] and len(names) == 6
    seen = {}
    for shard in index.shards:
        for meta, flac in read_shard(tmp_path / "sh" / shard.file):
            seen[meta["id"]] = (meta, flac)
    assert sorted(seen) == sorted(u.id for u in utts if u.id != "gone")
    by_id = {u.id: u for u in utts}
    for utt_id, (meta, flac) in seen.items():
        u = by_id[utt_id]
        x, sr = sf.read(io.BytesIO(flac), dtype="float32")
        expected = load_audio(u.audio, u.start, u.end)
        assert sr == 16000 and np.allclose(x, expected, atol=1e-4)  # 16-bit FLAC of the same samples
        assert (meta["lang"], meta["text"], meta["duration"]) == (u.lang, u.text, len(expected) / 16000)
    assert seen["u1"][0]["speaker"] == "s1" and seen["seg"][0]["duration"] == 1.0
    # the same manifest gives the same bytes
    run_main_output("prepare", "shards", manifest, "-o", tmp_path / "again", "--shard-size", "3")
    assert (tmp_path / "again" / "shard-000001.tar").read_bytes() == (tmp_path / "sh" / "shard-000001.tar").read_bytes()


def stream(root, rank=0, world=1, seed=0, batch_seconds=2.0, buffer=4):
    return ShardStream(ShardIndex.load(root), lambda meta, name: Row(meta), batch_seconds, seed, rank, world, buffer)


def ids(batch):
    return [e.utt.id for e, _ in batch]


def test_stream_gives_every_utterance_once_an_epoch_split_across_ranks(tmp_path):
    manifest, _ = corpus(tmp_path, n=12)
    run_main_output("prepare", "shards", manifest, "-o", tmp_path / "sh", "--shard-size", "2")
    index = ShardIndex.load(tmp_path / "sh")
    every = sorted(meta["id"] for s in index.shards for meta, _ in read_shard(tmp_path / "sh" / s.file))

    def epoch(s):  # the batches of the first epoch
        out = []
        while (batch := s.next()) and s.epoch == 0:
            out.append(batch)
        return out

    one = stream(tmp_path / "sh")
    first = [ids(b) for b in epoch(one)]
    assert sorted(sum(first, [])) == every
    for b in epoch(stream(tmp_path / "sh")):  # packed by duration: (size x longest) <= batch seconds
        assert len(b) == 1 or len(b) * max(e.utt.duration for e, _ in b) <= 2.0
    assert [ids(b) for b in epoch(stream(tmp_path / "sh"))] == first  # seeded
    assert [ids(b) for b in epoch(stream(tmp_path / "sh", seed=1))] != first
    ranks = [sum((ids(b) for b in epoch(stream(tmp_path / "sh", rank=r, world=2))), []) for r in (0, 1)]
    assert not set(ranks[0]) & set(ranks[1]) and sorted(ranks[0] + ranks[1]) == every
    with pytest.raises(HloraError, match="7 shard\\(s\\) for 8 processes: every process needs one at least"):
        stream(tmp_path / "sh", world=8)


def test_stream_resumes_where_its_state_says(tmp_path):
    manifest, _ = corpus(tmp_path, n=10)
    run_main_output("prepare", "shards", manifest, "-o", tmp_path / "sh", "--shard-size", "3")
    whole = stream(tmp_path / "sh")
    reference = [ids(whole.next()) for _ in range(12)]  # into the second epoch and beyond
    assert whole.epoch >= 1
    cut = stream(tmp_path / "sh")
    for _ in range(5):
        cut.next()
    state = cut.state_dict()
    resumed = stream(tmp_path / "sh")
    resumed.load_state_dict(state)
    assert [ids(resumed.next()) for _ in range(7)] == reference[5:]


def test_broken_shards_are_one_line_errors(tmp_path):
    manifest, _ = corpus(tmp_path)
    run_main_output("prepare", "shards", manifest, "-o", tmp_path / "sh", "--shard-size", "3")
    shard = tmp_path / "sh" / "shard-000001.tar"
    shard.write_bytes(shard.read_bytes()[:3000])  # cut short
    with pytest.raises(HloraError, match=f"^{shard}: not a readable shard"):
        list(read_shard(shard))
    shard.unlink()
    with pytest.raises(HloraError, match=f"^{shard}: listed in shards.json but missing$"):
        ShardIndex.load(tmp_path / "sh")
    (tmp_path / "sh" / INDEX).unlink()  # what a writer killed before the end leaves
    with pytest.raises(HloraError, match="no shards.json; write shards with `hlora prepare shards`"):
        ShardIndex.load(tmp_path / "sh")
    code, _, err = run_main_output("prepare", "shards", manifest, "-o", tmp_path / "sh")
    assert code == 2 and "exists and is not empty" in err
    code, _, err = run_main_output("prepare", "shards", manifest, "-o", tmp_path / "z", "--shard-size", "0")
    assert code == 2 and "--shard-size 0: give at least 1 utterance per shard" in err
