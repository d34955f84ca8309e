"""The shared-LoRA baseline and LIDLoRA trained and decoded through the CLI; exact resume from a
checkpoint older than the last logged step, in one process and under torchrun (killed with SIGKILL)."""

import json
import math
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from hlora_cli.data.manifest import read_manifest
from hlora_cli.model import load_model
from hlora_cli.train.trainer import Trainer
from tests.helpers import run_cli
from tests.train.conftest import config, make_corpus, records, train_args

LANGS = {"en", "de"}


def train_steps(run_dir: Path) -> list[int]:
    return [r["step"] for r in records(run_dir) if "loss" in r or "skipped" in r]


def eval_steps(run_dir: Path) -> list[int]:
    return [r["step"] for r in records(run_dir) if "dev_cer" in r]


def trainable(run_dir: Path) -> dict[str, torch.Tensor]:
    return torch.load(run_dir / "checkpoint.pt", map_location="cpu", weights_only=False)["model"]


def assert_same_weights(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> None:
    assert sorted(a) == sorted(b) and a
    for name in a:
        torch.testing.assert_close(a[name], b[name], atol=1e-6, rtol=0, msg=name)


def tiny_args(backbone: Path, manifest: Path, vocab: Path, out: Path, model_type: str, *extra) -> list:
    return train_args(backbone, manifest, vocab, out, "--model-type", model_type, *extra)


def decode(tmp_path: Path, manifest: Path, model: Path, mode: str, *extra) -> list[dict]:
    out = tmp_path / f"{model.parent.name}-{mode}.jsonl"
    run_cli("decode", manifest, "--model", model, "--mode", mode, "-o", out, *extra)
    return [json.loads(line) for line in out.read_text().splitlines()]


@pytest.fixture(scope="module")
def corpus(tmp_path_factory) -> tuple[Path, Path]:
    return make_corpus(tmp_path_factory.mktemp("corpus"))


@pytest.fixture(scope="module")
def baseline_run(tiny_backbone, corpus, tmp_path_factory) -> Path:
    manifest, vocab = corpus
    run = tmp_path_factory.mktemp("baseline") / "run"
    steps = ["--max-steps", "6", "--dev", manifest, "--eval-every", "3", "--save-every", "3"]
    run_cli(*tiny_args(tiny_backbone, manifest, vocab, run, "baseline", *steps))
    return run


def assert_logged_every_step(run: Path, steps: int) -> list[dict]:
    train = [r for r in records(run) if "loss" in r]
    assert train_steps(run) == list(range(1, steps + 1)) and len(train) == steps
    for r in train:
        assert all(math.isfinite(r[key]) for key in ("loss", "ctc", "lid", "grad_norm")), r
        assert r["loss"] > 0 and r["utts"] >= 1
    return train


def test_baseline_trains_then_decodes_single_pass(baseline_run, corpus, tmp_path):
    manifest, _ = corpus
    train = assert_logged_every_step(baseline_run, 6)
    # the shared head's CTC and the LID head both train: LID cross-entropy is positive
    assert all(r["lid"] > 0 for r in train) and all(r["loss"] > r["ctc"] for r in train)
    assert eval_steps(baseline_run) == [3, 6]
    model = load_model(baseline_run / "best")
    assert set(model.languages) == LANGS and model.lid_head is not None
    assert len(model.readout.vocab_sizes) == 1  # one head over the shared vocabulary
    refs = read_manifest(manifest)
    out = decode(tmp_path, manifest, baseline_run / "best", "single")
    assert sorted(o["id"] for o in out) == sorted(u.id for u in refs)
    for o in out:
        assert o["lang"] in LANGS and isinstance(o["text"], str)
        assert set(o["lang_probs"]) == LANGS and sum(o["lang_probs"].values()) == pytest.approx(1, abs=1e-3)
        assert o["lang"] == max(o["lang_probs"], key=o["lang_probs"].get)


def test_lidlora_trains_evaluates_with_the_true_language_and_decodes(tiny_backbone, corpus, baseline_run, tmp_path):
    manifest, vocab = corpus
    run = tmp_path / "lidlora"
    steps = ["--max-steps", "6", "--dev", manifest, "--eval-every", "3", "--save-every", "3"]
    run_cli(*tiny_args(tiny_backbone, manifest, vocab, run, "lidlora", *steps))
    train = assert_logged_every_step(run, 6)
    # no LID head: no LID term, the loss is the CTC loss of each utterance's own head
    assert all(r["lid"] == 0 and r["loss"] == pytest.approx(r["ctc"], rel=1e-12) for r in train)
    evals = [r for r in records(run) if "dev_cer" in r]
    assert [e["step"] for e in evals] == [3, 6]
    for e in evals:
        assert math.isfinite(e["dev_cer"]) and math.isfinite(e["dev_loss"]) and e["dev_loss"] > 0
        assert {"dev_cer_en", "dev_cer_de"} <= set(e)
        assert e["dev_lid_acc"] == 1.0  # evaluated as it is decoded: routed by the true language
    model = load_model(run / "best")
    assert set(model.languages) == LANGS and model.lid_head is None
    refs = {u.id: u.lang for u in read_manifest(manifest)}

    oracle = decode(tmp_path, manifest, run / "best", "oracle")
    assert sorted(o["id"] for o in oracle) == sorted(refs)
    assert all(o["lang"] == refs[o["id"]] for o in oracle)

    r = run_cli("decode", manifest, "--model", run / "best", "-o", tmp_path / "x.jsonl", check=False)
    assert r.returncode == 2 and r.stderr.startswith("error: ") and "has no LID head" in r.stderr

    # two-stage: the language (and its posteriors) come from the baseline's LID head
    two = decode(tmp_path, manifest, run / "best", "two-stage", "--lid-model", baseline_run / "best")
    single = {o["id"]: o for o in decode(tmp_path, manifest, baseline_run / "best", "single")}
    assert sorted(o["id"] for o in two) == sorted(refs)
    for o in two:
        assert o["lang"] in LANGS and o["lang"] == max(o["lang_probs"], key=o["lang_probs"].get)
        assert o["lang_probs"] == pytest.approx(single[o["id"]]["lang_probs"], abs=1e-4)


class Killed(Exception):
    pass


def test_resume_from_a_checkpoint_older_than_the_last_step(tiny_backbone, corpus, tmp_path):
    """Checkpoints every 3 steps; the run dies after step 5 (metrics logged to 5, an evaluation at
    4); resuming from step 3 must cut the log back and replay steps 4-8 exactly."""
    manifest, vocab = corpus
    cfg = config(
        tiny_backbone,
        manifest,
        vocab,
        dev=str(manifest),
        lora_dropout=0.1,  # the RNG state matters
        predicted_route_prob=0.5,
        max_steps=8,
        eval_every=4,
        save_every=3,
    )
    Trainer(cfg, tmp_path / "whole").fit()

    def die_after_5(record: dict) -> None:
        if record["step"] == 5:
            raise Killed

    killed = tmp_path / "killed"
    with pytest.raises(Killed):
        Trainer(cfg, killed).fit(on_step=die_after_5)
    ckpt = torch.load(killed / "checkpoint.pt", map_location="cpu", weights_only=False)
    assert ckpt["step"] == 3 and train_steps(killed) == [1, 2, 3, 4, 5] and eval_steps(killed) == [4]

    r = run_cli("train", "--out", killed, "--resume")
    assert "resuming at step 3" in r.stdout
    assert train_steps(killed) == list(range(1, 9)) and eval_steps(killed) == [4, 8]

    def kind(r: dict) -> str:  # a step, an evaluation, or the heads' emission at the end
        return next(k for k in ("dev_cer", "emitted_per_ref_token", "loss") if k in r)

    whole = {(r["step"], kind(r)): r for r in records(tmp_path / "whole")}
    for rec in records(killed):
        ref = whole[(rec["step"], kind(rec))]
        for key in ("loss", "ctc", "lid", "grad_norm", "dev_loss", "dev_cer", "emitted_per_ref_token"):
            if key in ref:
                assert rec[key] == pytest.approx(ref[key], abs=1e-6), (rec["step"], key)
    assert_same_weights(trainable(killed), trainable(tmp_path / "whole"))
    assert torch.load(killed / "checkpoint.pt", weights_only=False)["step"] == 8


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def torchrun(*args) -> list[str]:
    return [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--nproc_per_node",
        "2",
        "--master_port",
        str(free_port()),
        "-m",
        "hlora_cli",
        *map(str, args),
    ]


def descendants(pid: int) -> list[int]:
    """Every process below `pid` (torchrun starts its workers in sessions of their own, so killing
    its process group would leave them running)."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                ppid = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
            children.setdefault(ppid, []).append(int(entry.name))
    found, todo = [], [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            found.append(child)
            todo.append(child)
    return found


@pytest.mark.slow
@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="finds torchrun's workers in /proc")
def test_torchrun_sigkilled_then_resumed_matches_an_uninterrupted_run(tiny_backbone, corpus, tmp_path):
    manifest, vocab = corpus
    env = {**os.environ, "COLUMNS": "200", "OMP_NUM_THREADS": "1"}
    steps = ["--max-steps", "14", "--save-every", "2", "--batch-seconds", "1.5", "--lora-dropout", "0.1"]
    whole, killed = tmp_path / "whole", tmp_path / "killed"

    def run(*args) -> None:
        r = subprocess.run(torchrun(*args), capture_output=True, text=True, env=env, timeout=300)
        assert r.returncode == 0, r.stderr[-3000:]

    proc = subprocess.Popen(
        torchrun(*tiny_args(tiny_backbone, manifest, vocab, killed, "hlora", "--k", "2", *steps)),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env=env,
        start_new_session=True,
    )
    metrics = killed / "metrics.jsonl"
    try:  # kill it right after step 5 is logged: the checkpoint (step 4) is older than the log
        deadline = time.time() + 240
        while time.time() < deadline and proc.poll() is None:
            if metrics.exists() and metrics.read_text().count("\n") >= 5:
                break
            time.sleep(0.01)
    finally:
        for pid in [*descendants(proc.pid), proc.pid]:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        proc.wait()
    saved = torch.load(killed / "checkpoint.pt", map_location="cpu", weights_only=False)["step"]
    logged = train_steps(killed)
    assert 2 <= saved < 14, "the run should have been killed part-way"
    assert logged == list(range(1, len(logged) + 1)) and len(logged) > saved, (saved, logged)

    run(*tiny_args(tiny_backbone, manifest, vocab, whole, "hlora", "--k", "2", *steps))
    run("train", "--out", killed, "--resume")
    assert train_steps(killed) == list(range(1, 15)) == train_steps(whole)
    assert torch.load(killed / "checkpoint.pt", weights_only=False)["step"] == 14
    assert_same_weights(trainable(killed), trainable(whole))
    steps = [[r for r in records(run) if "loss" in r] for run in (killed, whole)]
    for a, b in zip(*steps, strict=True):
        assert a["loss"] == pytest.approx(b["loss"], abs=1e-6), a["step"]
