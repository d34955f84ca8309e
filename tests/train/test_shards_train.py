"""Training streamed from tar shards: the trainer's loop unchanged, loader workers decoding, and a
resumed run that goes on exactly as the uninterrupted one."""

import json

import pytest
import torch

from hlora_cli.errors import HloraError
from hlora_cli.train.trainer import Trainer
from tests.helpers import run_main_output
from tests.train.conftest import config, make_corpus


@pytest.fixture
def shards(tmp_path):
    manifest, vocab = make_corpus(tmp_path / "data")
    code, _, err = run_main_output("prepare", "shards", manifest, "-o", tmp_path / "shards", "--shard-size", "3")
    assert code == 0, err
    return tmp_path / "shards", vocab


def steps(run):
    rows = [json.loads(x) for x in (run / "metrics.jsonl").read_text().splitlines()]
    return [{k: v for k, v in r.items() if k != "data_wait_s"} for r in rows]


def test_training_streams_shards_and_resumes_exactly(tiny_backbone, tmp_path, shards, monkeypatch):
    monkeypatch.setenv("OMP_NUM_THREADS", str(torch.get_num_threads()))
    root, vocab = shards
    cfg = dict(max_steps=6, batch_seconds=2.0)
    whole = Trainer(config(tiny_backbone, root, vocab, **cfg), tmp_path / "whole")
    assert whole.streaming and whole.total_steps == 6
    whole.fit()
    losses = [r["loss"] for r in steps(tmp_path / "whole") if "loss" in r]
    assert len(losses) == 6 and losses[-1] < losses[0]
    cut = Trainer(config(tiny_backbone, root, vocab, **cfg), tmp_path / "cut")
    for _ in range(3):  # three steps and a checkpoint, as a run killed after step 3 leaves
        cut.train_step()
        cut.step += 1
        cut._log({"step": cut.step})
    cut._checkpoint()
    cut.batches.close()
    cut.release()
    Trainer(config(tiny_backbone, root, vocab, **cfg), tmp_path / "cut", resume=True).fit()
    resumed = [r for r in steps(tmp_path / "cut") if "loss" in r]
    assert [r["loss"] for r in resumed] == losses[3:]
    # loader workers decode the shards' audio: the same numbers as decoding in the process
    Trainer(config(tiny_backbone, root, vocab, num_workers=2, **cfg), tmp_path / "workers").fit()
    assert steps(tmp_path / "workers") == steps(tmp_path / "whole")


def test_shards_need_max_steps_and_heads_for_their_languages(tiny_backbone, tmp_path, shards):
    root, vocab = shards
    with pytest.raises(HloraError, match="shards are streamed, so an epoch's batches are not known ahead"):
        Trainer(config(tiny_backbone, root, vocab, max_steps=None, epochs=1.0), tmp_path / "a")
    with pytest.raises(HloraError, match=r"utterances in language\(s\) de have no head in this model \(en\)"):
        Trainer(config(tiny_backbone, root, vocab, languages=["en"]), tmp_path / "b")
