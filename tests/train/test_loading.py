"""Background loading: worker processes change what is computed nowhere, and a checkpoint's
sampler state is that of the last batch trained on, not of what the workers prefetched."""

import json
import os
import pickle

import numpy as np
import pytest
import soundfile as sf
import torch

from hlora_cli.data.batching import DurationBatchSampler
from hlora_cli.data.loader import Job, Segment, default_workers, load_in_background
from hlora_cli.errors import HloraError
from hlora_cli.infer.inputs import Item
from hlora_cli.infer.options import DecodeOptions
from hlora_cli.infer.runner import Recognizer
from hlora_cli.model import build_model
from hlora_cli.train.batches import TrainBatches
from hlora_cli.train.trainer import Trainer
from tests.conftest import randomize_adapters, tiny_config, waves
from tests.train.conftest import config, make_corpus


def _steps(run_dir):
    rows = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    return [{k: v for k, v in r.items() if k != "data_wait_s"} for r in rows]


def test_training_with_workers_equals_training_without(tiny_backbone, tmp_path, monkeypatch):
    # torch's threads would follow the workers (fit_threads) and sum in another order: pinned here,
    # so that only the loading differs
    monkeypatch.setenv("OMP_NUM_THREADS", str(torch.get_num_threads()))
    manifest, vocab = make_corpus(tmp_path / "data")
    runs = {}
    for workers in (0, 2):
        cfg = config(tiny_backbone, manifest, vocab, dev=str(manifest), max_steps=6, eval_every=3, num_workers=workers)
        trainer = Trainer(cfg, tmp_path / f"w{workers}")
        assert trainer.workers == workers
        trainer.fit()
        runs[workers] = _steps(tmp_path / f"w{workers}")
    # 6 steps, 2 evaluations and the heads' emission at the end: every number equal
    assert len(runs[0]) == 9 and runs[0] == runs[2]


def test_checkpoint_state_is_the_last_batch_trained_on_not_the_prefetched(tmp_path):
    durations = [0.5 + 0.1 * (i % 7) for i in range(40)]
    for i in range(40):
        sf.write(str(tmp_path / f"{i}.wav"), np.zeros(int(durations[i] * 16000), np.float32), 16000)
    frontend = build_model(tiny_config("hubert")).backbone.frontend

    def segments(idx):
        return idx, [Segment(str(tmp_path / f"{i}.wav")) for i in idx]

    batches = TrainBatches(DurationBatchSampler(durations, 3.0, seed=1), segments, frontend, workers=2)
    reference = DurationBatchSampler(durations, 3.0, seed=1)
    for _ in range(3):
        loaded = batches.next()
        expected = reference.next()
        assert loaded.key == expected and loaded.feats.values.shape[0] == len(expected)
    assert batches.sampler.state_dict() != reference.state_dict()  # the workers have read ahead
    assert batches.state_dict() == reference.state_dict()
    batches.load_state_dict(batches.state_dict())  # a resume: the next batch is the reference's next
    assert batches.next().key == reference.next()
    batches.close()


def test_a_frontend_error_in_a_worker_is_one_line_in_the_caller(tmp_path):
    sf.write(str(tmp_path / "short.wav"), np.zeros(100, np.float32), 16000)  # under one output frame
    frontend = build_model(tiny_config("hubert")).backbone.frontend
    jobs = [Job(0, [Segment(str(tmp_path / "short.wav"))])]
    with pytest.raises(HloraError) as e:
        list(load_in_background(jobs, frontend, workers=1))
    assert str(e.value).startswith("utterance 0 of the batch has 100 samples") and "\n" not in str(e.value)


def test_frontends_pickle_for_spawned_workers():
    for kind in ("whisper", "hubert"):
        frontend = build_model(tiny_config(kind)).backbone.frontend
        w = waves([0.7])
        again = pickle.loads(pickle.dumps(frontend))
        assert torch.equal(again(w).values, frontend(w).values)


def test_threads_and_loader_workers_fit_the_cores_the_process_may_use(monkeypatch):
    from hlora_cli import device

    monkeypatch.setattr(torch, "set_num_threads", lambda n: monkeypatch.setattr(torch, "get_num_threads", lambda: n))
    for cores, workers, threads in ((1, 0, 1), (2, 0, 2), (4, 1, 3), (8, 2, 6), (32, 4, 28)):
        monkeypatch.setattr("os.sched_getaffinity", lambda _, n=cores: set(range(n)))
        assert default_workers() == workers
        monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
        assert device.fit_threads(workers) == threads == torch.get_num_threads()
    assert device.fit_threads(4, processes=4) == 4  # 32 cores, 4 training processes: 8 each, 4 of them loading
    monkeypatch.setenv("OMP_NUM_THREADS", "3")  # the user's choice stays
    torch.set_num_threads(5)
    assert device.fit_threads(0) == 5


def test_openmp_threads_yield_unless_the_user_chose(tmp_path):
    import subprocess
    import sys

    code = "import hlora_cli, os; print(os.environ['OMP_WAIT_POLICY'])"
    env = {k: v for k, v in os.environ.items() if k != "OMP_WAIT_POLICY"}
    said = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True).stdout
    assert said.strip() == "PASSIVE"
    env["OMP_WAIT_POLICY"] = "ACTIVE"
    said = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True).stdout
    assert said.strip() == "ACTIVE"


def test_decoding_with_workers_equals_decoding_without(tmp_path):
    items = []
    for i, w in enumerate(waves([0.9, 0.5, 1.2, 0.7, 0.6, 2.5], seed=3)):
        sf.write(str(tmp_path / f"u{i}.wav"), w, 16000)
        items.append(Item(f"u{i}", str(tmp_path / f"u{i}.wav")))
    m = build_model(tiny_config("whisper")).eval()
    randomize_adapters(m, seed=5, scale=0.3)
    runs = [
        Recognizer(m, DecodeOptions(num_workers=n, batch_seconds=2.0, window=1.5, overlap=0.5)).run(items).results
        for n in (0, 2)
    ]
    assert [(r.id, r.lang, r.lang_probs, r.text, r.words) for r in runs[0]] == [
        (r.id, r.lang, r.lang_probs, r.text, r.words) for r in runs[1]
    ]
    assert len({r.lang for r in runs[0]}) > 1 or len({r.text for r in runs[0]}) > 1  # not all alike


def test_two_stage_lid_model_reads_its_own_features(tmp_path):
    """A HuBERT first stage before a Whisper-encoder model: each gets its own frontend's input."""
    w = waves([1.1], seed=8)[0]
    sf.write(str(tmp_path / "u.wav"), w, 16000, subtype="FLOAT")
    second = build_model(tiny_config("whisper", "lidlora")).eval()
    first = build_model(tiny_config("hubert", "baseline")).eval()
    randomize_adapters(first, seed=2, scale=0.3)
    recognizer = Recognizer(second, DecodeOptions(mode="two-stage"), lid_model=first)
    report = recognizer.identify([Item("u", str(tmp_path / "u.wav"))])
    with torch.no_grad():
        direct = first.identify(first.prepare([w])).exp()[0].numpy()
    probs = np.array([report.results[0].lang_probs[lang] for lang in first.languages])
    assert np.allclose(probs, direct, atol=1e-4)


def test_start_up_opens_no_audio_when_the_manifest_has_durations(tmp_path):
    """Durations in the manifest are trusted at start-up: files that do not even exist yet (a
    mount not ready, say) cost nothing until their batch is read."""
    from hlora_cli.data.manifest import Utterance, write_manifest
    from hlora_cli.data.vocab import build_vocab
    from hlora_cli.train.data import load_examples

    utts = [Utterance(f"u{i}", f"gone/{i}.flac", "en", "a b", duration=1.0 + i / 10) for i in range(30)]
    manifest = write_manifest(tmp_path / "m.jsonl", utts)
    data = load_examples(manifest, build_vocab(utts), ["en"], False, 30.0)
    sampler = DurationBatchSampler(data.durations, 6.0, seed=0)
    assert data.durations == [1.0 + i / 10 for i in range(30)] and sum(map(len, (sampler.next() for _ in range(3))))


def test_a_segment_reads_only_its_own_frames(tmp_path, monkeypatch):
    from hlora_cli.data.audio import load_audio

    sf.write(str(tmp_path / "long.flac"), np.zeros(16000 * 60, np.float32), 16000)
    asked = []
    real_read = sf.SoundFile.read
    monkeypatch.setattr(
        sf.SoundFile, "read", lambda self, frames=-1, **kw: asked.append(frames) or real_read(self, frames, **kw)
    )
    assert len(load_audio(tmp_path / "long.flac", 30.0, 31.5)) == 24000
    assert asked == [24000]  # 1.5 s of a 60 s recording, not the recording
