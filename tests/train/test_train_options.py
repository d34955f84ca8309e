"""Training options through `hlora train`: --grad-accum, --epochs, --early-stop, --metric,
--schedule cosine and --batching mixed, checked against metrics.jsonl, checkpoint.pt and the model
directories the runs write."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch
from safetensors.torch import load_file

from hlora_cli.data.manifest import Utterance, read_manifest, write_manifest
from hlora_cli.data.vocab import build_vocab
from tests.helpers import run_cli
from tests.train.conftest import TEXTS, make_corpus, records, train_args
from text_normalization import normalize

STILL = ["--lr", "1e-12", "--head-lr", "1e-12"]  # the weights do not move: every step sees the same model


pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def corpus(tmp_path_factory) -> tuple[Path, Path]:
    """8 utterances (en, de), 0.6-0.9 s: 3 batches an epoch at --batch-seconds 3."""
    return make_corpus(tmp_path_factory.mktemp("corpus"))


def steps_of(run: Path) -> list[dict]:
    return [r for r in records(run) if "loss" in r]


def evals_of(run: Path) -> list[dict]:
    return [r for r in records(run) if "dev_loss" in r]


def checkpoint(run: Path) -> dict:
    """checkpoint.pt read as a trusted file (whether `--resume` accepts it is tested on its own)."""
    return torch.load(run / "checkpoint.pt", map_location="cpu", weights_only=False)


def adapters(model_dir: Path) -> dict[str, torch.Tensor]:
    return load_file(str(model_dir / "adapters.safetensors"))


def precondition(ok: bool, message: object = "") -> None:
    """A check the test's claim rests on (its set-up): a RuntimeError, so that a broken set-up reads
    as such and not as the claim failing."""
    if not ok:
        raise RuntimeError(f"precondition failed: {message}")


def train_ok(*args) -> None:
    r = run_cli(*args, check=False)
    precondition(r.returncode == 0, (r.stderr, r.stdout[-2000:]))


def same_tensors(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> bool:
    return sorted(a) == sorted(b) and all(torch.equal(a[k], b[k]) for k in a)


def tone_corpus(root: Path, clips: list[tuple[str, float]]) -> tuple[Path, Path]:
    """One tone per (language, seconds), transcripts from TEXTS; a manifest and its vocab."""
    root.mkdir(parents=True, exist_ok=True)
    utts = []
    for i, (lang, seconds) in enumerate(clips):
        text = TEXTS[lang][i % len(TEXTS[lang])]
        t = np.arange(round(seconds * 16000)) / 16000
        x = 0.3 * np.sin(2 * np.pi * (220 + 60 * i) * t) + 0.01 * np.random.default_rng(i).standard_normal(len(t))
        sf.write(str(root / f"u{i}.wav"), x.astype(np.float32), 16000)
        utts.append(Utterance(f"u{i}", str(root / f"u{i}.wav"), lang, text, text_norm=normalize(text, lang)))
    build_vocab(utts, prefix_tokens=True).save(root / "vocab.json")
    return write_manifest(root / "train.jsonl", utts), root / "vocab.json"


# --- --grad-accum ----------------------------------------------------------------------------


def test_grad_accum_2_takes_two_sampler_batches_per_optimizer_step(tiny_backbone, corpus, tmp_path):
    """3 steps of --grad-accum 2 = 6 steps of one batch: each step's utterances, audio and loss are
    those of two consecutive batches of the plain run (its weights never move here, so both runs
    compute every batch's loss on the same model), the sampler ends at the same place, and the
    optimizer stepped 3 times, not 6."""
    manifest, vocab = corpus
    run_cli(*train_args(tiny_backbone, manifest, vocab, tmp_path / "one", "--max-steps", "6", *STILL))
    run_cli(
        *train_args(tiny_backbone, manifest, vocab, tmp_path / "two", "--max-steps", "3", "--grad-accum", "2", *STILL)
    )
    one, two = steps_of(tmp_path / "one"), steps_of(tmp_path / "two")
    assert [r["step"] for r in one] == [1, 2, 3, 4, 5, 6] and [r["step"] for r in two] == [1, 2, 3]
    for k, r in enumerate(two):
        a, b = one[2 * k], one[2 * k + 1]
        assert r["utts"] == a["utts"] + b["utts"], k
        assert r["audio_s"] == pytest.approx(a["audio_s"] + b["audio_s"], abs=1e-9), k
        # the logged loss is the mean over the utterances of both batches
        assert r["loss"] == pytest.approx((a["loss"] * a["utts"] + b["loss"] * b["utts"]) / r["utts"], rel=1e-5), k
    assert sum(r["utts"] for r in two) == 16  # 2 epochs of the 8 utterances
    ck_one, ck_two = checkpoint(tmp_path / "one"), checkpoint(tmp_path / "two")
    assert ck_two["sampler"] == ck_one["sampler"] == [{"epoch": 1, "position": 3}]
    # AdamW counts the steps of each tensor (a head without gradient in a one-language batch skips one)
    assert max(int(s["step"]) for s in ck_two["optimizer"]["state"].values()) == 3
    assert max(int(s["step"]) for s in ck_one["optimizer"]["state"].values()) == 6
    assert (ck_two["step"], ck_two["scheduler"]["last_epoch"]) == (3, 3)
    assert (ck_one["step"], ck_one["scheduler"]["last_epoch"]) == (6, 6)


def _first_grad_norm(backbone, manifest, vocab, out, *extra) -> float:
    # no dropout: the two runs would draw different masks (the logged grad_norm is taken before clipping)
    train_ok(*train_args(backbone, manifest, vocab, out, "--max-steps", "1", "--lora-dropout", "0", *extra))
    return steps_of(out)[0]["grad_norm"]


def test_grad_accum_of_two_equal_batches_is_one_batch_twice_as_large(tiny_backbone, tmp_path):
    """4 clips of 0.6 s: --batch-seconds 1.2 gives 2 batches of 2 (accumulated), 2.4 one batch of 4.
    The first step's gradient norm (before clipping) is the same."""
    manifest, vocab = tone_corpus(tmp_path / "data", [("en", 0.6), ("de", 0.6), ("en", 0.6), ("de", 0.6)])
    split = _first_grad_norm(
        tiny_backbone, manifest, vocab, tmp_path / "split", "--batch-seconds", "1.2", "--grad-accum", "2"
    )
    whole = _first_grad_norm(tiny_backbone, manifest, vocab, tmp_path / "whole", "--batch-seconds", "2.4")
    assert steps_of(tmp_path / "split")[0]["utts"] == steps_of(tmp_path / "whole")[0]["utts"] == 4
    assert split == pytest.approx(whole, rel=1e-4)


def test_grad_accum_of_unequal_batches_is_one_batch_twice_as_large(tiny_backbone, tmp_path):
    """Four 0.6 s clips and one 0.9 s clip: --batch-seconds 2.5 gives batches of 4 and of 1
    (accumulated with --grad-accum 2), 4.5 one batch of 5. The gradient of the accumulated step should
    be that of the 5 utterances' mean loss, as the logged loss is."""
    clips = [("en", 0.6), ("de", 0.6), ("en", 0.6), ("de", 0.6), ("en", 0.9)]
    manifest, vocab = tone_corpus(tmp_path / "data", clips)
    split = _first_grad_norm(
        tiny_backbone, manifest, vocab, tmp_path / "split", "--batch-seconds", "2.5", "--grad-accum", "2"
    )
    whole = _first_grad_norm(tiny_backbone, manifest, vocab, tmp_path / "whole", "--batch-seconds", "4.5")
    precondition(steps_of(tmp_path / "split")[0]["utts"] == steps_of(tmp_path / "whole")[0]["utts"] == 5)
    assert split == pytest.approx(whole, rel=1e-4)


# --- --epochs --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "epochs, accum, steps",
    [("2", "1", 6), ("1.5", "1", 5), ("2", "2", 3)],  # ceil(epochs x 3 batches / grad_accum)
)
def test_epochs_give_ceil_epochs_times_batches_per_epoch_steps(tiny_backbone, corpus, tmp_path, epochs, accum, steps):
    manifest, vocab = corpus
    run = tmp_path / "run"
    run_cli(*train_args(tiny_backbone, manifest, vocab, run, "--epochs", epochs, "--grad-accum", accum))
    logged = steps_of(run)
    assert [x["step"] for x in logged] == list(range(1, steps + 1))
    assert checkpoint(run)["step"] == steps
    if epochs == "2":  # two whole epochs: every utterance twice
        assert sum(x["utts"] for x in logged) == 16


def test_three_epochs_show_every_utterance_three_times(tiny_backbone, corpus, tmp_path):
    manifest, vocab = corpus
    run = tmp_path / "run"
    train_ok(*train_args(tiny_backbone, manifest, vocab, run, "--epochs", "3", "--batch-seconds", "2.5"))
    assert sum(x["utts"] for x in steps_of(run)) == 3 * 8
    assert checkpoint(run)["sampler"] == [{"epoch": 2, "position": 4}]  # at the end of epoch 3's batches


# --- --early-stop ----------------------------------------------------------------------------


@pytest.mark.parametrize("patience", [2, 3])
def test_early_stop_after_n_evaluations_without_improvement(tiny_backbone, corpus, tmp_path, patience):
    """The weights never move, so the first evaluation is the best and every later one is no
    improvement: the run stops at evaluation 1 + N, far before --max-steps."""
    manifest, vocab = corpus
    run = tmp_path / "run"
    extra = ["--max-steps", "20", "--dev", manifest, "--eval-every", "1", "--early-stop", str(patience), *STILL]
    run_cli(*train_args(tiny_backbone, manifest, vocab, run, *extra))
    evals = evals_of(run)
    assert [e["step"] for e in evals] == list(range(1, patience + 2))
    assert len({e["dev_cer"] for e in evals}) == 1  # no improvement after the first
    assert [r["step"] for r in steps_of(run)] == list(range(1, patience + 2))
    ck = checkpoint(run)
    assert (ck["step"], ck["evals_since_best"], ck["best"]) == (patience + 1, patience, evals[0]["dev_cer"])


def test_without_early_stop_the_same_run_goes_to_max_steps(tiny_backbone, corpus, tmp_path):
    manifest, vocab = corpus
    run = tmp_path / "run"
    extra = ["--max-steps", "6", "--dev", manifest, "--eval-every", "1", *STILL]
    run_cli(*train_args(tiny_backbone, manifest, vocab, run, *extra))
    assert [e["step"] for e in evals_of(run)] == [1, 2, 3, 4, 5, 6]
    assert checkpoint(run)["evals_since_best"] == 5


# --- --metric --------------------------------------------------------------------------------


def _best_step(evals: list[dict], key: str, higher: bool) -> int:
    """The first evaluation with the best value (a tie is no improvement)."""
    best = max(e[key] for e in evals) if higher else min(e[key] for e in evals)
    return next(e["step"] for e in evals if e[key] == best)


@pytest.mark.parametrize(
    "metric, key, higher, dev_langs, lr",
    [("loss", "dev_loss", False, {"en", "de"}, "2e-2"), ("lid_acc", "dev_lid_acc", True, {"en"}, "5e-3")],
)
def test_best_is_the_model_of_the_best_evaluation_by_the_metric(
    tiny_backbone, corpus, tmp_path, metric, key, higher, dev_langs, lr
):
    """best/ holds the weights of the first evaluation with the best --metric value: the same weights
    as a run stopped at that step (a constant schedule makes the runs' first steps identical)."""
    manifest, vocab = corpus
    dev = write_manifest(tmp_path / "dev.jsonl", [u for u in read_manifest(manifest) if u.lang in dev_langs])
    common = ["--dev", dev, "--eval-every", "1", "--metric", metric, "--schedule", "constant", "--lr", lr]
    common += ["--lid-weight", "1", "--head-lr", "1e-2"]
    run_cli(*train_args(tiny_backbone, manifest, vocab, tmp_path / "full", "--max-steps", "12", *common))
    evals = evals_of(tmp_path / "full")
    step = _best_step(evals, key, higher)
    # the run must have moved away from its best, or best/ = last/ would prove nothing
    assert 1 < step < 12, [(e["step"], e[key]) for e in evals]
    other = {"loss": ("dev_lid_acc", True), "lid_acc": ("dev_loss", False)}[metric]
    assert _best_step(evals, *other) != step  # the other metric would have kept another model
    run_cli(*train_args(tiny_backbone, manifest, vocab, tmp_path / "cut", "--max-steps", str(step), *common))
    best = adapters(tmp_path / "full" / "best")
    assert same_tensors(best, adapters(tmp_path / "cut" / "last"))
    assert not same_tensors(best, adapters(tmp_path / "full" / "last"))
    assert checkpoint(tmp_path / "full")["best"] == pytest.approx(evals[step - 1][key], abs=0)


def test_dev_loss_counts_utterances_the_lid_misroutes(tiny_backbone, corpus, tmp_path):
    manifest, vocab = corpus
    dev = write_manifest(tmp_path / "dev.jsonl", [u for u in read_manifest(manifest) if u.lang == "en"])
    extra = ["--max-steps", "12", "--dev", dev, "--eval-every", "1", "--metric", "loss", "--schedule", "constant"]
    train_ok(*train_args(tiny_backbone, manifest, vocab, tmp_path / "run", *extra, "--lid-weight", "1"))
    evals = evals_of(tmp_path / "run")
    # the LID is wrong on every dev utterance at some evaluations and right on every one at others
    precondition({e["dev_lid_acc"] for e in evals} >= {0.0, 1.0}, evals)
    assert all(e["dev_loss"] > 0 for e in evals), [(e["step"], e["dev_loss"], e["dev_lid_acc"]) for e in evals]
    best = _best_step(evals, "dev_loss", higher=False)
    assert evals[best - 1]["dev_lid_acc"] > 0


@pytest.mark.parametrize(
    "metric",
    [
        "cer",
        "loss",
        "lid_acc",
    ],
)
def test_a_run_kept_best_by_any_metric_resumes(tiny_backbone, corpus, tmp_path, metric):
    """README: `hlora train --out RUN --resume` continues a killed run; its checkpoint loads with
    weights_only=True."""
    manifest, vocab = corpus
    run = tmp_path / "run"
    extra = ["--max-steps", "2", "--dev", manifest, "--eval-every", "1", "--save-every", "1", "--metric", metric]
    train_ok(*train_args(tiny_backbone, manifest, vocab, run, *extra))
    r = run_cli("train", "--out", run, "--resume", "--max-steps", "3", check=False)
    assert r.returncode == 0, r.stderr
    assert [x["step"] for x in steps_of(run)] == [1, 2, 3]


# --- --schedule ------------------------------------------------------------------------------


def test_cosine_schedule_logs_the_cosine_learning_rates(tiny_backbone, corpus, tmp_path):
    """Warmup over 2 steps, then lr x (1 + cos(pi x progress)) / 2 down to 0 at the last step; the lr
    logged at step s is the one the next step uses."""
    manifest, vocab = corpus
    lr, warmup, total = 5e-3, 2, 10
    logged = {}
    for schedule in ("cosine", "linear"):
        run = tmp_path / schedule
        extra = ["--max-steps", str(total), "--schedule", schedule, "--warmup-steps", str(warmup), "--lr", str(lr)]
        run_cli(*train_args(tiny_backbone, manifest, vocab, run, *extra))
        logged[schedule] = [r["lr"] for r in steps_of(run)]
    expected = []
    for s in range(1, total + 1):
        progress = (s - warmup) / (total - warmup)
        expected.append(lr * (s + 1) / warmup if s < warmup else lr * 0.5 * (1 + math.cos(math.pi * progress)))
    assert logged["cosine"] == pytest.approx(expected, abs=1e-12)
    assert logged["cosine"][-1] == pytest.approx(0, abs=1e-12)
    assert logged["cosine"][warmup + (total - warmup) // 2 - 1] == pytest.approx(lr / 2, abs=1e-12)  # half-way
    # guard: the linear schedule is another curve with the same ends
    linear = [
        lr * min(1, (s + 1) / warmup) if s < warmup else lr * (1 - (s - warmup) / (total - warmup))
        for s in range(1, total + 1)
    ]
    assert logged["linear"] == pytest.approx(linear, abs=1e-12)
    assert logged["cosine"][3] > logged["linear"][3]


# --- --batching ------------------------------------------------------------------------------

# en clips of 0.50-0.53 s, de clips of 1.00-1.03 s: a step's utterances and audio seconds say how
# many of each language it held. Sorted by duration at 2.2 s a batch, they make one en batch of 4
# and two de batches of 2.
LANG_CLIPS = [
    ("en", 0.50),
    ("en", 0.51),
    ("en", 0.52),
    ("en", 0.53),
    ("de", 1.00),
    ("de", 1.01),
    ("de", 1.02),
    ("de", 1.03),
]


def _languages_per_step(run: Path) -> list[tuple[int, int]]:
    """(en, de) utterances of every step, from its utterance count and audio seconds."""
    out = []
    for r in steps_of(run):
        n = int(r["utts"])
        de = round((r["audio_s"] - 0.5 * n) / 0.5)
        out.append((n - de, de))
    return out


def _train_batching(backbone, tmp_path, batching: str, steps: int) -> list[tuple[int, int]]:
    manifest, vocab = tone_corpus(tmp_path / "data", LANG_CLIPS)
    run = tmp_path / batching
    extra = ["--max-steps", str(steps), "--batch-seconds", "2.2", "--batching", batching, *STILL]
    train_ok(*train_args(backbone, manifest, vocab, run, *extra))
    precondition(f"batching: {batching}" in (run / "train.yaml").read_text())
    return _languages_per_step(run)


def test_mixed_batching_mixes_languages_that_sorted_batching_keeps_apart(tiny_backbone, tmp_path):
    sorted_steps = _train_batching(tiny_backbone, tmp_path, "sorted", 9)
    mixed_steps = _train_batching(tiny_backbone, tmp_path, "mixed", 9)
    assert sum(en for en, _ in sorted_steps) > 0 and sum(de for _, de in sorted_steps) > 0
    assert all(en == 0 or de == 0 for en, de in sorted_steps), sorted_steps
    assert sum(en > 0 and de > 0 for en, de in mixed_steps) >= len(mixed_steps) // 2, mixed_steps


def test_mixed_batching_mixes_languages_in_every_batch(tiny_backbone, tmp_path):
    mixed_steps = _train_batching(tiny_backbone, tmp_path, "mixed", 12)
    assert all(en > 0 and de > 0 for en, de in mixed_steps if en + de > 1), mixed_steps
