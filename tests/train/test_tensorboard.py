"""TensorBoard events beside metrics.jsonl: the same numbers, per-language records as one scalar
per language, none with --no-tensorboard, and a clear error where the package is missing."""

import importlib.util
import json

import pytest

from hlora_cli.errors import HloraError
from hlora_cli.train.trainer import Trainer
from tests.train.conftest import config, make_corpus

pytest.importorskip("tensorboard")


def scalars(run_dir) -> dict[str, dict[int, float]]:
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    events = EventAccumulator(str(run_dir / "tensorboard"))
    events.Reload()
    return {tag: {e.step: e.value for e in events.Scalars(tag)} for tag in events.Tags()["scalars"]}


def test_events_hold_what_metrics_jsonl_holds(tiny_backbone, tmp_path):
    manifest, vocab = make_corpus(tmp_path / "data")
    run = tmp_path / "run"
    Trainer(config(tiny_backbone, manifest, vocab, dev=str(manifest), tensorboard=True), run).fit()
    rows = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    tb = scalars(run)
    steps = [r for r in rows if "loss" in r]
    assert sorted(tb["loss"]) == [1, 2, 3, 4]
    assert tb["loss"] == pytest.approx({r["step"]: r["loss"] for r in steps}, rel=1e-6)
    assert tb["lr"] == pytest.approx({r["step"]: r["lr"] for r in steps}, rel=1e-6)
    evals = [r for r in rows if "dev_cer" in r]
    assert tb["dev_cer"] == pytest.approx({r["step"]: r["dev_cer"] for r in evals}) and sorted(tb["dev_cer"]) == [2, 4]
    ratios = rows[-1]["emitted_per_ref_token"]
    assert {tag: v[4] for tag, v in tb.items() if tag.startswith("emitted_per_ref_token/")} == pytest.approx(
        {f"emitted_per_ref_token/{lang}": r for lang, r in ratios.items()}
    )


def test_no_tensorboard_writes_no_events(tiny_backbone, tmp_path):
    manifest, vocab = make_corpus(tmp_path / "data")
    run = tmp_path / "run"
    Trainer(config(tiny_backbone, manifest, vocab, tensorboard=False, max_steps=1), run).fit()
    assert (run / "metrics.jsonl").exists() and not (run / "tensorboard").exists()


def test_tensorboard_without_the_package_is_a_clear_error(tiny_backbone, tmp_path, monkeypatch):
    manifest, vocab = make_corpus(tmp_path / "data")
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "tensorboard" else real(name, *a))
    with pytest.raises(HloraError, match="^--tensorboard needs the tensorboard package: pip install tensorboard$"):
        Trainer(config(tiny_backbone, manifest, vocab, tensorboard=True), tmp_path / "run")
    assert not (tmp_path / "run").exists()
