import json
import os
import signal
import subprocess
import sys
import time

import pytest
import torch

from hlora_cli.data.manifest import Utterance
from hlora_cli.errors import HloraError
from hlora_cli.model import load_model
from hlora_cli.model import readout as readout_module
from hlora_cli.train.config import load_config
from hlora_cli.train.trainer import Trainer
from tests.data.helpers import write_audio
from tests.helpers import hlora
from tests.train.conftest import config, losses, make_corpus, train_args


def test_trains_saves_and_loss_goes_down(tiny_backbone, tmp_path):
    manifest, vocab = make_corpus(tmp_path / "data")
    r = hlora(
        *train_args(
            tiny_backbone,
            manifest,
            vocab,
            tmp_path / "run",
            "--max-steps",
            "30",
            "--dev",
            str(manifest),
            "--eval-every",
            "10",
            "--save-every",
            "10",
        ),
        check=True,
    )
    assert "best cer" in r.stdout and "trainable / frozen" in r.stdout
    loss = losses(tmp_path / "run")
    assert len(loss) == 30 and sum(list(loss.values())[-5:]) < 0.7 * sum(list(loss.values())[:5])
    for name in ("best", "last"):
        model = load_model(tmp_path / "run" / name)
        assert model.config.model_type == "hlora" and model.config.k == 2
    evals = [json.loads(x) for x in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines() if "dev_cer" in x]
    assert [e["step"] for e in evals] == [10, 20, 30] and {"dev_cer_en", "dev_cer_de", "dev_lid_acc"} <= set(evals[0])


def test_sigkill_then_resume_gives_the_same_losses(tiny_backbone, tmp_path, monkeypatch):
    # torch's threads would follow the workers (fit_threads) and sum in another order: pinned, here
    # and in the killed process, so that only the loading and the kill differ
    monkeypatch.setenv("OMP_NUM_THREADS", str(torch.get_num_threads()))
    manifest, vocab = make_corpus(tmp_path / "data")
    steps = ["--max-steps", "40", "--save-every", "1", "--lora-dropout", "0.1"]
    hlora(*train_args(tiny_backbone, manifest, vocab, tmp_path / "whole", *steps, "--num-workers", "0"), check=True)
    killed = tmp_path / "killed"
    # with workers reading ahead (the resume keeps them): the state saved is the step's, not theirs
    with_workers = train_args(tiny_backbone, manifest, vocab, killed, *steps, "--num-workers", "2")
    proc = subprocess.Popen(
        [sys.executable, "-m", "hlora_cli", *with_workers],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.time() + 120
    while time.time() < deadline and proc.poll() is None:
        if (killed / "metrics.jsonl").exists() and len(losses(killed)) >= 6:
            break
        time.sleep(0.01)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    stopped_at = len(losses(killed))
    assert 6 <= stopped_at < 40, "the run should have been killed part-way"
    hlora("train", "--out", str(killed), "--resume", check=True)
    whole, resumed = losses(tmp_path / "whole"), losses(killed)
    assert sorted(resumed) == list(range(1, 41))
    for step in range(1, 41):
        assert resumed[step] == pytest.approx(whole[step], abs=1e-6), step


def test_run_dir_with_another_run_is_refused(tiny_backbone, tmp_path):
    manifest, vocab = make_corpus(tmp_path / "data")
    hlora(*train_args(tiny_backbone, manifest, vocab, tmp_path / "run", "--max-steps", "2"), check=True)
    r = hlora(*train_args(tiny_backbone, manifest, vocab, tmp_path / "run", "--max-steps", "2"))
    assert r.returncode == 2
    assert (
        r.stderr.strip() == f"error: {tmp_path / 'run'} holds another run: pass --resume to continue it or "
        "--overwrite to replace it"
    )
    hlora(*train_args(tiny_backbone, manifest, vocab, tmp_path / "run", "--max-steps", "3", "--overwrite"), check=True)
    assert len(losses(tmp_path / "run")) == 3


def test_bad_data_is_skipped_and_counted(tiny_backbone, tmp_path):
    long = write_audio(tmp_path / "long.wav", 4.0)
    extra = [
        Utterance("long", str(long), "en", "a cab"),
        Utterance("odd", str(long), "de", "xyz ab", text_norm="xyz ab"),
    ]
    manifest, vocab = make_corpus(tmp_path / "data", extra)
    trainer = Trainer(config(tiny_backbone, manifest, vocab, max_duration=3.0), tmp_path / "run")
    assert trainer.train_data.skipped == {"over max duration": 2}
    extra = [Utterance("odd", str(tmp_path / "data" / "de0.wav"), "de", "x", text_norm="xyz ab")]
    manifest, vocab = make_corpus(tmp_path / "data2", extra)
    trainer = Trainer(config(tiny_backbone, manifest, vocab), tmp_path / "run2")
    assert trainer.train_data.unknown_chars == 3  # x, y, z are not in the German inventory


def test_empty_manifest_and_language_without_head(tiny_backbone, tmp_path):
    manifest, vocab = make_corpus(tmp_path / "data")
    (tmp_path / "empty.jsonl").write_text("")
    with pytest.raises(HloraError, match=r"empty.jsonl: manifest is empty"):
        Trainer(config(tiny_backbone, tmp_path / "empty.jsonl", vocab), tmp_path / "run")
    extra = [Utterance("it0", str(tmp_path / "data" / "en0.wav"), "it", "ciao")]
    manifest, vocab = make_corpus(tmp_path / "data3", extra)
    with pytest.raises(HloraError, match=r"utterances in language\(s\) it \(1\) have no head in this model \(de, en\)"):
        Trainer(config(tiny_backbone, manifest, vocab, languages=None), tmp_path / "run3")


def test_non_finite_loss_skips_the_batch_then_aborts(tiny_backbone, tmp_path, monkeypatch):
    manifest, vocab = make_corpus(tmp_path / "data")
    real = readout_module.joint_loss
    calls = {"n": 0}

    def flaky(*args, **kw):
        parts = real(*args, **kw)
        calls["n"] += 1
        if calls["n"] in (2, 3):
            parts.total = parts.total * float("nan")
        return parts

    monkeypatch.setattr(readout_module, "joint_loss", flaky)
    trainer = Trainer(config(tiny_backbone, manifest, vocab, max_steps=5, eval_every=100), tmp_path / "run")
    summary = trainer.fit()
    assert summary.steps == 5 and summary.bad_batches == 2
    rows = [r for r in map(json.loads, (tmp_path / "run" / "metrics.jsonl").open()) if "loss" in r or "skipped" in r]
    assert [r.get("skipped", 0) for r in rows] == [
        0,
        1,
        1,
        0,
        0,
    ]

    monkeypatch.setattr(
        readout_module,
        "joint_loss",
        lambda *a, **k: (p := real(*a, **k)) and setattr(p, "total", p.total * float("nan")) or p,
    )
    trainer = Trainer(config(tiny_backbone, manifest, vocab, max_bad_batches=3), tmp_path / "run2")
    with pytest.raises(HloraError, match=r"3 batches in a row had a non-finite loss \(step 2\)"):
        trainer.fit()


def test_missing_settings_are_clear_errors(tmp_path):
    with pytest.raises(HloraError, match="an hlora model needs --k"):
        load_config(None, dict(train="t", vocab="v", backbone="b", max_steps=1)).check()
    (tmp_path / "run.yaml").write_text("lr: 0.1\nlearning_rate: 2\n")
    with pytest.raises(HloraError, match=r"run.yaml: unknown setting\(s\) learning_rate"):
        load_config(tmp_path / "run.yaml", {})
    (tmp_path / "run.yaml").write_text("lr: 1e-3\nhead_lr: 2E-2\nmax_steps: 7\n")  # YAML 1.1 strings
    cfg = load_config(tmp_path / "run.yaml", {})
    assert (cfg.lr, cfg.head_lr, cfg.max_steps) == (1e-3, 2e-2, 7)
    (tmp_path / "run.yaml").write_text("lr: fast\n")
    with pytest.raises(HloraError, match=r"run.yaml: setting lr must be a number, got 'fast'"):
        load_config(tmp_path / "run.yaml", {})
    (tmp_path / "run.yaml").write_text("lr: 0.1\nk: 3\n")
    assert (
        load_config(tmp_path / "run.yaml", {"lr": None, "k": 5}).lr,
        load_config(tmp_path / "run.yaml", {"k": 5}).k,
    ) == (0.1, 5)


@pytest.mark.slow
def test_ddp_with_torchrun_two_processes(tiny_backbone, tmp_path):
    manifest, vocab = make_corpus(tmp_path / "data")
    torchrun = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--nproc_per_node",
        "2",
        "--master_port",
        "29517",
        "-m",
        "hlora_cli",
    ]
    env = {**os.environ, "COLUMNS": "200", "OMP_NUM_THREADS": "1"}

    def ddp(*args):
        r = subprocess.run([*torchrun, *args], capture_output=True, text=True, env=env, timeout=600)
        assert r.returncode == 0, r.stderr[-3000:]
        return r

    # constant LR after warmup: a run extended by --resume then follows the same schedule as one run
    base = train_args(
        tiny_backbone, manifest, vocab, tmp_path / "ddp", "--batch-seconds", "1.5", "--schedule", "constant"
    )
    r = ddp(*base, "--max-steps", "20", "--save-every", "10")
    assert "2 process(es)" in r.stdout
    loss = losses(tmp_path / "ddp")
    assert len(loss) == 20 and sum(list(loss.values())[-4:]) < 0.8 * sum(list(loss.values())[:4])
    # resume under DDP: continue to step 30, and match a run that went to 30 in one go
    ddp("train", "--out", str(tmp_path / "ddp"), "--resume", "--max-steps", "30")
    ddp(
        *train_args(
            tiny_backbone, manifest, vocab, tmp_path / "whole", "--batch-seconds", "1.5", "--schedule", "constant"
        ),
        "--max-steps",
        "30",
        "--save-every",
        "10",
    )
    resumed, whole = losses(tmp_path / "ddp"), losses(tmp_path / "whole")
    assert sorted(resumed) == list(range(1, 31))
    for step in range(1, 31):
        assert resumed[step] == pytest.approx(whole[step], abs=1e-5), step


def test_heads_train_at_head_lr_and_lora_at_lr(tiny_backbone, tmp_path):
    manifest, vocab = make_corpus(tmp_path / "data")
    trainer = Trainer(config(tiny_backbone, manifest, vocab, head_lr=0.02), tmp_path / "run")
    lora, heads = trainer.optimizer.param_groups
    model = trainer.model
    head_params = {id(p) for p in [*model.readout.parameters(), *model.lid_head.parameters()]}
    assert {id(p) for p in heads["params"]} == head_params
    assert {id(p) for p in lora["params"]} == {
        id(p) for m in model.lora_modules() for p in m.parameters() if p.requires_grad
    }
    assert (lora["initial_lr"], heads["initial_lr"]) == (5e-3, 0.02)
    # without head_lr both groups follow lr
    same = Trainer(config(tiny_backbone, manifest, vocab), tmp_path / "run2").optimizer.param_groups
    assert [g["initial_lr"] for g in same] == [5e-3, 5e-3]


def test_a_checkpoint_from_before_the_readout_resumes_as_the_uninterrupted_run(tiny_backbone, tmp_path, monkeypatch):
    """checkpoint.pt files written before the CTC heads became the model's readout name them
    ctc_heads.heads.N: such a run resumes, and ends as the run that was never interrupted."""
    monkeypatch.setenv("OMP_NUM_THREADS", str(torch.get_num_threads()))
    manifest, vocab = make_corpus(tmp_path / "data")
    Trainer(config(tiny_backbone, manifest, vocab, max_steps=4), tmp_path / "whole").fit()
    cut = Trainer(config(tiny_backbone, manifest, vocab, max_steps=4), tmp_path / "cut")
    for _ in range(2):
        cut.train_step()
        cut.step += 1
    cut._checkpoint()
    cut.batches.close()
    cut.release()
    ckpt_path = tmp_path / "cut" / "checkpoint.pt"
    ckpt = torch.load(ckpt_path, weights_only=False)
    renamed = {n.replace("readout.", "ctc_heads.", 1) for n in ckpt["model"] if n.startswith("readout.")}
    assert len(renamed) == 4  # weight and bias of the de and en heads
    ckpt["model"] = {n.replace("readout.", "ctc_heads.", 1): t for n, t in ckpt["model"].items()}
    torch.save(ckpt, ckpt_path)
    Trainer(config(tiny_backbone, manifest, vocab, max_steps=4), tmp_path / "cut", resume=True).fit()
    whole, resumed = load_model(tmp_path / "whole" / "last"), load_model(tmp_path / "cut" / "last")
    for (name, a), (_, b) in zip(whole.named_parameters(), resumed.named_parameters(), strict=True):
        assert torch.allclose(a, b, atol=1e-6), name
