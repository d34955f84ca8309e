"""LoRA language experts, their MoLE fusion (`hlora fuse`) and their distilled student
(`hlora distill`) on a tiny Whisper, through the same trainer and the same decode/lid/score/info."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch

from hlora_cli.data.manifest import Utterance, read_manifest
from hlora_cli.data.vocab import build_vocab
from hlora_cli.errors import HloraError
from hlora_cli.model import load_model, save_model
from hlora_cli.model.experts import init_student, load_experts
from hlora_cli.train.config import TrainConfig
from hlora_cli.train.trainer import Trainer
from tests.conftest import waves
from tests.helpers import run_cli
from tests.train.conftest import make_corpus, records
from text_normalization import normalize

FR = ["aba", "ce bec", "dace", "ebe"]


def _corpus(root: Path) -> tuple[Path, Path]:
    """The tiny en + de corpus with a third language (fr) for adding a language."""
    root.mkdir(parents=True, exist_ok=True)
    extra = []
    for i, text in enumerate(FR):
        t = np.arange(int((0.6 + 0.1 * i) * 16000)) / 16000
        x = 0.3 * np.sin(2 * np.pi * (900 + 60 * i) * t)
        path = root / f"fr{i}.wav"
        sf.write(str(path), x.astype(np.float32), 16000)
        extra.append(Utterance(f"fr{i}", str(path), "fr", text, text_norm=normalize(text, "fr")))
    manifest, vocab = make_corpus(root, extra)
    build_vocab(read_manifest(manifest), prefix_tokens=True).save(vocab)  # with fr
    return manifest, vocab


def _common(manifest: Path, out: Path, steps: int = 6) -> list[str]:
    return [
        "--out", out, "--train", manifest, "--dev", manifest, "--lr", "5e-3", "--warmup-steps", "2",
        "--batch-seconds", "3", "--max-steps", str(steps), "--eval-every", str(steps), "--seed", "0",
        "--num-workers", "0", "--deterministic",
    ]  # fmt: skip


@pytest.fixture(scope="module")
def experts(tiny_backbone, tmp_path_factory) -> tuple[dict[str, Path], Path, Path]:
    """One expert per language (rank 4), each trained on its own rows of the 3-language manifest."""
    root = tmp_path_factory.mktemp("experts")
    manifest, vocab = _corpus(root / "data")
    dirs = {}
    for lang in ("en", "de", "fr"):
        run = root / f"expert_{lang}"
        run_cli(
            "train", "--model-type", "expert", "--languages", lang, "--backbone", tiny_backbone, "--vocab", vocab,
            "--lora-rank", "4", *_common(manifest, run),
        )  # fmt: skip
        dirs[lang] = run / "best"
    return dirs, manifest, vocab


def _subset(manifest: Path, langs: set[str]) -> Path:
    """The rows of `langs`, beside the manifest (its audio paths are relative to it)."""
    path = manifest.parent / f"{'_'.join(sorted(langs))}.jsonl"
    rows = [x for x in manifest.read_text().splitlines() if json.loads(x)["lang"] in langs]
    path.write_text("".join(x + "\n" for x in rows))
    return path


def _rows(path: Path) -> list[dict]:
    """Decoding or LID output rows."""
    return [json.loads(x) for x in path.read_text().splitlines()]


def _feats(model, n: int = 3):
    return model.prepare(waves([0.7, 0.5, 0.9][:n], seed=3))


def test_an_expert_is_one_language_adapter_only_and_decodes_alone(experts, tmp_path):
    dirs, manifest, _ = experts
    de = load_model(dirs["de"])
    assert de.config.model_type == "expert" and de.languages == ["de"] and de.lid_head is None
    assert de.layout.describe() == "layers 1-4 per language"
    assert sorted(p.name for p in dirs["de"].iterdir()) == ["adapters.safetensors", "config.json"]
    # the expert read only its language's rows of the manifest: the others are counted as skipped
    run = dirs["de"].parent
    assert {r["utts"] for r in records(run) if "utts" in r} <= {1, 2, 3, 4}
    assert all("lid_acc" not in r for r in records(run))  # no LID to be right or wrong
    de_rows = _subset(manifest, {"de"})
    run_cli("decode", de_rows, "--model", dirs["de"], "-o", tmp_path / "hyp.jsonl")  # single mode: no language given
    hyps = _rows(tmp_path / "hyp.jsonl")
    assert len(hyps) == 4 and {h["lang"] for h in hyps} == {"de"}
    run_cli("lid", de_rows, "--model", dirs["de"], "-o", tmp_path / "lid.jsonl")
    run_cli("score", de_rows, tmp_path / "hyp.jsonl", "--json", tmp_path / "s.json")
    scores = json.loads((tmp_path / "s.json").read_text())
    assert scores["languages"]["de"]["n"] == 4 and scores["lid_accuracy"] == 1.0
    r = run_cli("info", dirs["de"])
    assert "expert" in r.stdout and "rank 4," in r.stdout and "one language (de)" in r.stdout


def test_expert_needs_one_language_and_defaults_to_rank_64(tiny_backbone, tmp_path):
    manifest, vocab = make_corpus(tmp_path / "d")
    base = ["train", "--model-type", "expert", "--backbone", tiny_backbone, "--vocab", vocab]
    r = run_cli(*base, *_common(manifest, tmp_path / "run"), check=False)
    assert r.returncode == 2 and "one language's model: give it with --languages" in r.stderr
    cfg = TrainConfig(train=str(manifest), vocab=str(vocab), backbone=str(tiny_backbone), model_type="expert",
                      languages=["en"], max_steps=1)  # fmt: skip
    cfg.check()
    assert cfg.lora_rank == 64


def _mole(dirs: dict[str, Path], langs: list[str], manifest: Path, out: Path, *extra) -> Path:
    data = _subset(manifest, set(langs))
    run_cli("fuse", *(dirs[x] for x in langs), "--l1", "2", "--lid-weight", "1.0", *_common(data, out), *extra)
    return out / "best"


def test_one_hot_fusion_weights_give_exactly_that_experts_outputs(experts, tmp_path):
    dirs, manifest, _ = experts
    mole = load_model(_mole(dirs, ["en", "de"], manifest, tmp_path / "mole"))
    for i, lang in enumerate(["en", "de"]):
        expert = load_model(dirs[lang])
        with torch.no_grad():
            mole.fusion.fill_(-float("inf"))
            mole.fusion[:, i] = 0.0
        feats = _feats(mole)
        langs = torch.full((3,), i)
        for merged in (False, True):
            if merged:
                mole.merge(routed=True)
                expert.merge(routed=True)
            with torch.no_grad():
                a = mole(feats, "oracle", langs)
                b = expert(feats, "predicted")
            v = b.ctc_logprobs.shape[-1]  # the mole pads to its largest head with -inf
            torch.testing.assert_close(a.ctc_logprobs[..., :v], b.ctc_logprobs, atol=1e-5, rtol=1e-5)
            assert torch.isinf(a.ctc_logprobs[..., v:]).all()
            mole.unmerge()
            expert.unmerge()


def test_fuse_trains_fusion_and_router_only_and_the_mole_reloads_identically(experts, tmp_path):
    dirs, manifest, _ = experts
    best = _mole(dirs, ["en", "de"], manifest, tmp_path / "mole")
    mole = load_model(best)
    trained = {n for n, p in mole.named_parameters() if p.requires_grad}
    assert trained and all(n == "fusion" or n.startswith("lid_head.") for n in trained)
    assert mole.layout.describe() == "layers 1-2 experts fused, LID after layer 2, layers 3-4 per language"
    weights = torch.softmax(mole.fusion, -1)
    assert torch.allclose(weights.sum(-1), torch.ones(2)) and not torch.allclose(weights, torch.full_like(weights, 0.5))
    for i, expert in enumerate(load_experts([dirs["en"], dirs["de"]])):  # the experts came through unchanged
        params = dict(mole.named_parameters())
        for name, t in expert.state.items():
            target = params[name][i] if ".lora_" in name else params[name.replace("heads.0.", f"heads.{i}.")]
            torch.testing.assert_close(target, t[0] if ".lora_" in name else t, atol=0, rtol=0)
    save_model(mole, tmp_path / "again")
    again = load_model(tmp_path / "again")
    feats = _feats(mole)
    with torch.no_grad():
        a, b = mole(feats), again(feats)
    torch.testing.assert_close(a.ctc_logprobs, b.ctc_logprobs, atol=0, rtol=0)
    torch.testing.assert_close(a.lid_logprobs, b.lid_logprobs, atol=0, rtol=0)


def test_mole_goes_through_lid_decode_score_and_info_in_every_mode(experts, tmp_path):
    dirs, manifest, _ = experts
    best = _mole(dirs, ["en", "de"], manifest, tmp_path / "mole")
    test = _subset(manifest, {"en", "de"})
    for mode in ("single", "oracle"):
        run_cli("decode", test, "--model", best, "--mode", mode, "-o", tmp_path / f"{mode}.jsonl")
    run_cli("decode", test, "--model", best, "--mode", "two-stage", "--lid-model", best, "-o", tmp_path / "two.jsonl")
    single = [(h["id"], h["lang"], h["text"]) for h in _rows(tmp_path / "single.jsonl")]
    assert single == [(h["id"], h["lang"], h["text"]) for h in _rows(tmp_path / "two.jsonl")]
    run_cli("lid", test, "--model", best, "-o", tmp_path / "lid.jsonl")
    lid = {h["id"]: h["lang"] for h in _rows(tmp_path / "lid.jsonl")}
    assert lid == {i: lang for i, lang, _ in single}
    run_cli("score", test, tmp_path / "single.jsonl", tmp_path / "oracle.jsonl", "--systems", "single,oracle",
        "--json", tmp_path / "s.json")  # fmt: skip
    scores = json.loads((tmp_path / "s.json").read_text())
    assert scores["oracle"]["lid_accuracy"] == 1.0 and scores["single"]["languages"]["en"]["n"] == 4
    r = run_cli("info", best)
    assert "mole" in r.stdout and "experts fused" in r.stdout and "fusion weights, layer 2" in r.stdout


def test_merged_mole_decodes_as_unmerged(experts, tmp_path):
    dirs, manifest, _ = experts
    mole = load_model(_mole(dirs, ["en", "de"], manifest, tmp_path / "mole"))
    feats = _feats(mole)
    with torch.no_grad():
        a = mole(feats)
        mole.merge(routed=True)
        b = mole(feats)
    assert torch.equal(a.lang_ids, b.lang_ids)
    torch.testing.assert_close(a.ctc_logprobs, b.ctc_logprobs, atol=1e-4, rtol=1e-4)


def test_adding_a_language_warm_starts_fusion_and_router_and_retrains_nothing_else(experts, tmp_path):
    dirs, manifest, _ = experts
    old = load_model(_mole(dirs, ["en", "de"], manifest, tmp_path / "two"))
    cfg = TrainConfig(train=str(manifest), model_type="mole", experts=[str(dirs[x]) for x in ("en", "de", "fr")],
                      l1=2, init_from=str(tmp_path / "two" / "best"), max_steps=1, num_workers=0)  # fmt: skip
    trainer = Trainer(cfg, tmp_path / "three")
    new = trainer.model
    assert new.languages == ["en", "de", "fr"]
    torch.testing.assert_close(new.fusion.detach()[:, :2], old.fusion.detach(), atol=0, rtol=0)
    torch.testing.assert_close(new.fusion.detach()[:, 2], old.fusion.detach().mean(1), atol=1e-6, rtol=0)
    head_old, head_new = old.lid_head.mlp[-1], new.lid_head.mlp[-1]
    torch.testing.assert_close(head_new.weight.detach()[:2], head_old.weight.detach(), atol=0, rtol=0)
    assert all(n == "fusion" or n.startswith("lid_head.") for n in new.trainable_state_dict())
    trainer.fit()
    run_cli("decode", manifest, "--model", tmp_path / "three" / "best", "-o", tmp_path / "hyp.jsonl")
    assert len(_rows(tmp_path / "hyp.jsonl")) == 12


def test_fuse_refuses_experts_that_do_not_fit(experts, tiny_backbone, tmp_path):
    dirs, manifest, vocab = experts
    with pytest.raises(HloraError, match="a second expert for en"):
        load_experts([dirs["en"], dirs["en"]])
    hlora_dir = tmp_path / "hl"
    run_cli("train", "--model-type", "hlora", "--k", "2", "--backbone", tiny_backbone, "--vocab", vocab, "--lora-rank",
        "4", *_common(manifest, hlora_dir, steps=1))  # fmt: skip
    with pytest.raises(HloraError, match="is a hlora model, not an expert"):
        load_experts([dirs["en"], hlora_dir / "best"])
    r8 = tmp_path / "r8"
    run_cli("train", "--model-type", "expert", "--languages", "fr", "--backbone", tiny_backbone, "--vocab", vocab,
        "--lora-rank", "8", *_common(manifest, r8, steps=1))  # fmt: skip
    with pytest.raises(HloraError, match="train every expert with the same --lora-rank"):
        load_experts([dirs["en"], r8 / "best"])
    r = run_cli("fuse", dirs["en"], dirs["de"], *_common(manifest, tmp_path / "m"), check=False)
    assert "needs --l1" in r.stderr
    r = run_cli("fuse", dirs["en"], dirs["de"], "--l1", "4", *_common(manifest, tmp_path / "m"), check=False)
    assert "l1=4 is outside 1..3" in r.stderr
    r = run_cli("fuse", dirs["en"], *_common(manifest, tmp_path / "m"), "--l1", "2", check=False)
    assert "two or more expert directories, got 1" in r.stderr


def test_student_starts_from_the_experts_average(experts):
    dirs, _, _ = experts
    loaded = load_experts([dirs["en"], dirs["de"]])
    from hlora_cli.model import build_model
    from hlora_cli.model.config import LIDConfig
    from hlora_cli.model.experts import student_config

    student = build_model(student_config(loaded, 8, 16.0, 0.0, LIDConfig()))  # rank 8 = 2 experts x rank 4
    init_student(student, loaded)
    scale = loaded[0].config.lora.alpha / loaded[0].config.lora.rank
    for name, module in student.named_modules():
        if hasattr(module, "lora_A") and ".layers." in name:
            mean = sum(scale * e.state[f"{name}.lora_B"][0] @ e.state[f"{name}.lora_A"][0] for e in loaded) / len(
                loaded
            )
            torch.testing.assert_close(module.delta_weight()[0], mean, atol=1e-5, rtol=1e-4)
    vocab = student.config.shared_vocab
    assert vocab[0] == "<blank>" and set(loaded[0].vocab) | set(loaded[1].vocab) == set(vocab)


def _distill(dirs, manifest, out: Path, *extra) -> Path:
    run_cli("distill", dirs["en"], dirs["de"], "--lora-rank", "8", "--lid-weight", "0.5",
        *_common(manifest, out), *extra)  # fmt: skip
    return out


def test_distillation_with_kd_weights_at_zero_is_plain_ctc_training_of_the_student(experts, tmp_path):
    dirs, manifest, _ = experts
    data = _subset(manifest, {"en", "de"})
    zero = _distill(dirs, data, tmp_path / "zero", "--kd-cos-weight", "0", "--kd-js-weight", "0")
    plain = _distill(dirs, data, tmp_path / "plain", "--kd", "none")
    a = [r["loss"] for r in records(zero) if "loss" in r]
    b = [r["loss"] for r in records(plain) if "loss" in r]
    assert len(a) == 6 and a == pytest.approx(b, abs=1e-6)
    assert all(r["kd_js"] > 0 and r["kd_cos"] > 0 for r in records(zero) if "loss" in r)
    layer = _distill(dirs, data, tmp_path / "layer")
    c = [r["loss"] for r in records(layer) if "loss" in r]
    first = next(r for r in records(layer) if "loss" in r)
    # the objective is CTC + LID + the KD terms, and they change what is learnt
    expected = first["ctc"] + 0.5 * first["lid"] + first["kd_cos"] + first["kd_js"]
    assert first["loss"] == pytest.approx(expected, rel=1e-5)
    assert c[-1] != pytest.approx(a[-1], abs=1e-4)


def test_student_reloads_identically_and_goes_through_decode_lid_score_info(experts, tmp_path):
    dirs, manifest, _ = experts
    data = _subset(manifest, {"en", "de"})
    best = _distill(dirs, data, tmp_path / "s", "--kd", "logits") / "best"
    student = load_model(best)
    assert student.config.model_type == "student" and student.config.lora.rank == 8
    assert student.shared_head and student.lid_head is not None
    save_model(student, tmp_path / "again")
    feats = _feats(student)
    with torch.no_grad():
        a, b = student(feats), load_model(tmp_path / "again")(feats)
    torch.testing.assert_close(a.ctc_logprobs, b.ctc_logprobs, atol=0, rtol=0)
    run_cli("decode", data, "--model", best, "-o", tmp_path / "hyp.jsonl")
    run_cli("lid", data, "--model", best, "-o", tmp_path / "lid.jsonl")
    run_cli("score", data, tmp_path / "hyp.jsonl", "--json", tmp_path / "s.json")
    assert len(_rows(tmp_path / "hyp.jsonl")) == 8
    assert json.loads((tmp_path / "s.json").read_text())["languages"]["en"]["n"] == 4
    assert "student" in run_cli("info", best).stdout


def test_js_is_zero_for_the_same_posteriors_and_positive_otherwise():
    from hlora_cli.model.losses import posterior_js

    lp = torch.log_softmax(torch.randn(2, 5, 4), -1)
    maps = [torch.tensor([0, 1, 2, 3])]
    langs, lengths = torch.zeros(2, dtype=torch.long), torch.tensor([5, 3])
    assert float(posterior_js(lp, lp, langs, lengths, maps)) == pytest.approx(0, abs=1e-6)
    other = torch.log_softmax(torch.randn(2, 5, 4), -1)
    js = float(posterior_js(other, lp, langs, lengths, maps))
    assert 0 < js <= np.log(2)


def test_hidden_states_come_back_in_the_callers_order_after_routing_sorts_the_batch():
    from hlora_cli.model import build_model
    from tests.conftest import randomize_adapters, tiny_config

    model = build_model(tiny_config("whisper", "lidlora")).eval()
    randomize_adapters(model)
    feats = model.prepare(waves([0.6, 0.6, 0.6], seed=5))
    langs = torch.tensor([2, 0, 2])  # sorted to (0, 2, 2) inside the forward
    with torch.no_grad():
        out = model(feats, "oracle", langs, hidden=True)
        assert len(out.hidden) == model.backbone.num_layers
        for b in range(3):
            alone = model(
                model.prepare(waves([0.6, 0.6, 0.6], seed=5)[b : b + 1]), "oracle", langs[b : b + 1], hidden=True
            )
            for layer, state in enumerate(out.hidden):
                torch.testing.assert_close(state[b], alone.hidden[layer][0], atol=1e-5, rtol=1e-5)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_experts_fuse_and_distill_train_in_bf16_on_the_gpu_and_decode_as_on_the_cpu(experts, tmp_path):
    dirs, manifest, _ = experts
    data = _subset(manifest, {"en", "de"})
    gpu = ["--device", "cuda"]  # bf16 autocast is the default there
    run_cli("fuse", dirs["en"], dirs["de"], "--l1", "2", *_common(data, tmp_path / "mole"), *gpu)
    run_cli("distill", dirs["en"], dirs["de"], "--lora-rank", "8", *_common(data, tmp_path / "student"), *gpu)
    for run in ("mole", "student"):
        steps = [r for r in records(tmp_path / run) if "loss" in r]
        assert len(steps) == 6 and all(np.isfinite(r["loss"]) for r in steps)
        out = {}
        for device in ("cpu", "cuda"):
            path = tmp_path / f"{run}_{device}.jsonl"
            run_cli(
                "decode", data, "--model", tmp_path / run / "best", "--device", device, "--dtype", "fp32", "-o", path
            )
            out[device] = [(h["id"], h["lang"], h["text"]) for h in _rows(path)]
        assert out["cuda"] == out["cpu"]
    assert json.loads((tmp_path / "student_cuda.meta.json").read_text())["device"].startswith("cuda")


def test_compiled_layerwise_distillation_reads_the_teachers_frames(experts, tmp_path, monkeypatch):
    # the student's compiled forward pads time to whole seconds: the teacher must read the same
    # frames, or the KD terms compare tensors of two lengths (aot_eager: a CPU refuses inductor's)
    from functools import partial

    from hlora_cli.model.compiled import CompiledForward

    monkeypatch.setattr("hlora_cli.train.trainer.CompiledForward", partial(CompiledForward, backend="aot_eager"))
    dirs, manifest, _ = experts
    data = _subset(manifest, {"en", "de"})
    eager = records(_distill(dirs, data, tmp_path / "eager", "--max-steps", "2"))
    compiled = records(_distill(dirs, data, tmp_path / "compiled", "--max-steps", "2", "--compile"))
    # close, not equal: the student's LoRA dropout (5 %) draws other masks compiled
    for a, b in zip([r for r in eager if "loss" in r], [r for r in compiled if "loss" in r], strict=True):
        assert b["loss"] == pytest.approx(a["loss"], rel=1e-3) and b["ctc"] == pytest.approx(a["ctc"], rel=1e-3)
        assert b["kd_cos"] == pytest.approx(a["kd_cos"], rel=0.1) and b["kd_js"] == pytest.approx(a["kd_js"], rel=0.1)
