"""`hlora train --compile`: the training step calls the compiled forward (model/compiled.py), and
a compiled training follows the eager one step for step."""

from __future__ import annotations

from functools import partial

import pytest
import torch

from hlora_cli.model.compiled import CompiledForward
from hlora_cli.train.trainer import Trainer
from tests.helpers import run_main
from tests.train.conftest import config, losses, make_corpus, train_args


def test_a_compiled_training_follows_the_eager_one(tiny_backbone, tmp_path, monkeypatch):
    # aot_eager: the graphs inductor would compile on a GPU, run eagerly (a CPU refuses inductor's)
    monkeypatch.setattr("hlora_cli.train.trainer.CompiledForward", partial(CompiledForward, backend="aot_eager"))
    manifest, vocab = make_corpus(tmp_path / "data")
    runs = {}
    for compiled in (False, True):
        # no dropout: compiled and eager code draw their masks differently (the tiny Whisper has none)
        cfg = config(tiny_backbone, manifest, vocab, lora_dropout=0.0, max_steps=3, eval_every=3, compile=compiled)
        trainer = Trainer(cfg, tmp_path / f"run-{compiled}")
        assert isinstance(trainer.forward_model, CompiledForward) is compiled
        try:
            trainer.fit()
        finally:
            trainer.release()
        runs[compiled] = losses(tmp_path / f"run-{compiled}")
        runs[compiled, "lora"] = torch.cat([p.detach().flatten() for p in trainer.params])
    assert list(runs[True]) == list(runs[False]) == [1, 2, 3]  # batches of 4, 1 and 3 utterances
    for step, loss in runs[False].items():
        assert runs[True][step] == pytest.approx(loss, rel=1e-5), step
    # after three AdamW steps the trained weights are the same to fp32 rounding
    torch.testing.assert_close(runs[True, "lora"], runs[False, "lora"], atol=1e-5, rtol=1e-4)


def test_compile_with_gradient_checkpointing_is_refused(tiny_backbone, tmp_path):
    from hlora_cli.errors import HloraError

    manifest, vocab = make_corpus(tmp_path / "data")
    cfg = config(tiny_backbone, manifest, vocab, compile=True, gradient_checkpointing=True)
    with pytest.raises(HloraError, match="--compile with --gradient-checkpointing is not supported"):
        cfg.check()


def test_compile_on_a_cpu_is_a_one_line_error(tiny_backbone, tmp_path):
    manifest, vocab = make_corpus(tmp_path / "data")
    code, err = run_main(*train_args(tiny_backbone, manifest, vocab, tmp_path / "run", "--max-steps", "1", "--compile"))
    assert code == 2 and "--compile trains on a CUDA GPU" in err and len(err.strip().splitlines()) == 1


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_a_compiled_cuda_training_follows_the_eager_one(tiny_backbone, tmp_path):
    from torch._dynamo.utils import counters

    manifest, vocab = make_corpus(tmp_path / "data")
    torch._dynamo.reset()  # nothing compiled by earlier tests in this process
    counters.clear()
    runs = {}
    for compiled in (False, True):  # inductor's kernels and CUDA graphs (mode reduce-overhead)
        cfg = config(tiny_backbone, manifest, vocab, lora_dropout=0.0, max_steps=3, eval_every=3, compile=compiled)
        cfg.device, cfg.dtype, cfg.deterministic = "cuda", "fp32", False
        trainer = Trainer(cfg, tmp_path / f"run-{compiled}")
        try:
            trainer.fit()
        finally:
            trainer.release()
        runs[compiled] = losses(tmp_path / f"run-{compiled}")
        runs[compiled, "lora"] = torch.cat([p.detach().flatten().cpu() for p in trainer.params])
    assert counters["stats"]["unique_graphs"] >= 1  # it compiled (not an eager fallback)
    for step, loss in runs[False].items():  # other kernels, other rounding (TF32 matmuls in both)
        assert runs[True][step] == pytest.approx(loss, rel=2e-3), step
    torch.testing.assert_close(runs[True, "lora"], runs[False, "lora"], atol=1e-3, rtol=1e-2)
