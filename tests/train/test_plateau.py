"""Heads tied by symbol while training starts, and the blank-plateau watch that reports a language
whose head has not started to emit."""

import json

import pytest
import torch
from rich.console import Console

from hlora_cli.cli.progress import print_summary
from hlora_cli.errors import HloraError
from hlora_cli.model.ctc_decoding import emitted_tokens
from hlora_cli.model.heads import CTCHeads
from hlora_cli.train.plateau import EmissionWatch, plateau_warning
from hlora_cli.train.trainer import Trainer
from tests.train.conftest import config, make_corpus

INVENTORIES = [["<blank>", "|", "a", "b"], ["<blank>", "|", "b", "c", "ñ"]]


def rows_of(heads, lang, token):
    i = INVENTORIES[lang].index(token)
    return torch.cat([heads.heads[lang].weight[i], heads.heads[lang].bias[i : i + 1]])


def test_tied_heads_share_each_symbols_row_until_untied():
    torch.manual_seed(0)
    heads = CTCHeads(6, [4, 5])
    c_before = rows_of(heads, 1, "c").clone()
    heads.tie_rows(INVENTORIES)
    for token in ("<blank>", "|", "b"):  # shared symbols: the first head's row in both
        assert torch.equal(rows_of(heads, 0, token), rows_of(heads, 1, token))
    assert torch.equal(rows_of(heads, 1, "c"), c_before)  # a symbol of one head keeps its own row
    opt = torch.optim.SGD(heads.parameters(), lr=0.1)
    h = torch.randn(2, 7, 6)
    # a batch of head 0 only: head 1's copies of the shared rows move the same way
    heads(h, torch.tensor([0, 0]))[..., :4].sum().backward()
    heads.sum_tied_grads()
    b0 = rows_of(heads, 0, "b").detach().clone()
    opt.step()
    assert not torch.equal(rows_of(heads, 0, "b"), b0)
    assert torch.equal(rows_of(heads, 0, "b"), rows_of(heads, 1, "b"))
    assert torch.equal(rows_of(heads, 1, "c"), c_before)  # no gradient reached it
    # both heads in one batch: a shared row's gradient is the sum of both heads' gradients
    opt.zero_grad()
    out = heads.every_head(h)
    (out[0][..., 3].sum() + out[1][..., 2].sum()).backward()  # "b" in each head
    alone = [heads.heads[lang].weight.grad[i].clone() for lang, i in ((0, 3), (1, 2))]
    heads.sum_tied_grads()
    assert torch.allclose(heads.heads[0].weight.grad[3], alone[0] + alone[1])
    assert torch.equal(heads.heads[0].weight.grad[3], heads.heads[1].weight.grad[2])
    heads.untie()
    opt.zero_grad()
    heads(h, torch.tensor([0, 0]))[..., :4].sum().backward()
    heads.sum_tied_grads()  # untied: nothing to do
    assert heads.heads[1].weight.grad is None
    with pytest.raises(ValueError, match="one token inventory per head"):
        heads.tie_rows(INVENTORIES[:1])


def test_emitted_tokens_merge_repeats_drop_blanks_and_padding():
    best = torch.tensor([[0, 3, 3, 0, 3, 5, 0], [2, 2, 2, 0, 0, 0, 4]])
    log_probs = torch.nn.functional.one_hot(best, 6).float().log()
    assert emitted_tokens(log_probs, torch.tensor([7, 7])).tolist() == [3, 2]
    assert emitted_tokens(log_probs, torch.tensor([5, 3])).tolist() == [2, 1]


def test_emission_watch_names_the_language_still_on_the_plateau():
    watch = EmissionWatch(["de", "es"], window=2)
    blank_then_a = torch.nn.functional.one_hot(torch.tensor([[1, 0, 2, 0], [0, 0, 0, 0]]), 3).float().log()
    watch.add(emitted_tokens(blank_then_a, torch.tensor([4, 4])).tolist(), [0, 1], [2, 4])  # de emits 2 of 2, es 0 of 4
    assert watch.ratios() == {"de": 1.0, "es": 0.0}
    assert watch.on_plateau() == {"es": 0.0}
    only_a = torch.nn.functional.one_hot(torch.tensor([[2, 0, 2, 2]]), 3).float().log()
    for _ in range(2):  # the window keeps the last two batches: es's early blanks are forgotten
        watch.add(emitted_tokens(only_a, torch.tensor([4])).tolist(), [1], [3])
    assert watch.ratios() == {"es": round(4 / 6, 3)} and watch.on_plateau() == {}
    assert plateau_warning("es", 0.04, 600).startswith(
        "warning: es: after 600 steps its CTC head emits 0.04 tokens per reference token"
    )


def test_training_ties_then_unties_and_reports_the_plateau(tiny_backbone, tmp_path):
    manifest, vocab = make_corpus(tmp_path / "data")
    trainer = Trainer(config(tiny_backbone, manifest, vocab, head_tie_steps=2, max_steps=3), tmp_path / "run")
    heads, inventories = trainer.model.readout, trainer.model.config.vocabs
    shared = [t for t in inventories["en"] if t in inventories["de"]]
    assert len(shared) >= 4

    def same_rows() -> bool:
        langs = trainer.model.languages
        rows = [
            [h.weight[inventories[lang].index(t)] for t in shared] for h, lang in zip(heads.heads, langs, strict=True)
        ]
        return all(torch.equal(a, b) for a, b in zip(*rows, strict=True))

    assert same_rows()
    trainer.train_step()
    trainer.step += 1
    trainer.train_step()  # the second tied step, then the heads go on alone
    trainer.step += 1
    assert same_rows() and heads.tied_rows is None
    trainer.train_step()
    assert not same_rows()
    trainer.release()


def test_training_reports_a_language_left_on_the_plateau(tiny_backbone, tmp_path, capsys):
    manifest, vocab = make_corpus(tmp_path / "data")
    run = tmp_path / "run"
    trainer = Trainer(config(tiny_backbone, manifest, vocab, max_steps=3, lr=1e-9), run)
    with torch.no_grad():  # en's head on the plateau for good: blank wins every frame
        trainer.model.readout.heads[trainer.model.languages.index("en")].bias[0] = 1e4
    summary = trainer.fit()
    assert list(summary.plateau) == ["en"] and summary.plateau["en"] == 0.0
    rows = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert rows[-1]["emitted_per_ref_token"]["en"] == 0.0 and rows[-1]["emitted_per_ref_token"]["de"] > 0.5
    print_summary(Console(), summary, run)
    err = capsys.readouterr().err
    assert "warning: en: after 3 steps its CTC head emits 0.00 tokens per reference token" in err
    assert "warning: de" not in err


@pytest.mark.parametrize("model_type", ["shared-lora", "ctc", "expert"])
def test_head_tie_steps_needs_per_language_heads(tiny_backbone, tmp_path, model_type):
    manifest, vocab = make_corpus(tmp_path / "data")
    with pytest.raises(HloraError, match="^--head-tie-steps ties per-language CTC heads: it applies to lidlora"):
        config(tiny_backbone, manifest, vocab, model_type=model_type, head_tie_steps=5, languages=["en"]).check()


def test_a_resumed_run_reports_the_emission_of_the_uninterrupted_one(tiny_backbone, tmp_path, monkeypatch):
    monkeypatch.setenv("OMP_NUM_THREADS", str(torch.get_num_threads()))
    manifest, vocab = make_corpus(tmp_path / "data")
    whole = Trainer(config(tiny_backbone, manifest, vocab, max_steps=4), tmp_path / "whole").fit()
    cut = Trainer(config(tiny_backbone, manifest, vocab, max_steps=4), tmp_path / "cut")
    for _ in range(2):  # two steps and a checkpoint, as a run killed after step 2 leaves
        cut.train_step()
        cut.step += 1
    cut._checkpoint()
    cut.batches.close()
    cut.release()
    resumed = Trainer(config(tiny_backbone, manifest, vocab, max_steps=4), tmp_path / "cut", resume=True).fit()

    def last(run):
        return json.loads((run / "metrics.jsonl").read_text().splitlines()[-1])

    assert resumed.plateau == whole.plateau
    assert last(tmp_path / "cut") == last(tmp_path / "whole")
    assert last(tmp_path / "whole")["emitted_per_ref_token"].keys() == {"en", "de"}
