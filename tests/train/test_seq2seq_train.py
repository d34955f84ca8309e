"""seq2seq through the commands: a tiny random Whisper (encoder + decoder, Whisper's real tokenizer)
trains a few steps as an expert per language and as hlora, the experts fuse (MoLE) and distil into a
student with layer-wise terms over encoder and decoder layers, and every model decodes and identifies."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from hlora_cli.model import load_model
from hlora_cli.train.config import load_config
from hlora_cli.train.trainer import Trainer
from tests.helpers import hlora
from tests.model.conftest import TINY_S2S
from tests.train.conftest import make_corpus

STEPS = ["--max-steps", "3", "--warmup-steps", "1", "--batch-seconds", "3", "--seed", "0", "--lora-rank", "4"]


@pytest.fixture(scope="module")
def s2s_backbone(whisper_base, tmp_path_factory) -> Path:
    """A tiny random WhisperForConditionalGeneration saved with Whisper-base's tokenizer, feature
    extractor and generation config (language tokens)."""
    from transformers import (
        GenerationConfig,
        WhisperConfig,
        WhisperFeatureExtractor,
        WhisperForConditionalGeneration,
        WhisperTokenizer,
    )

    out = tmp_path_factory.mktemp("tiny-s2s")
    torch.manual_seed(0)
    model = WhisperForConditionalGeneration(WhisperConfig(**TINY_S2S))
    model.generation_config = GenerationConfig.from_pretrained(whisper_base)
    model.save_pretrained(out)
    WhisperTokenizer.from_pretrained(whisper_base).save_pretrained(out)
    WhisperFeatureExtractor.from_pretrained(whisper_base).save_pretrained(out)
    return out


@pytest.fixture(scope="module")
def corpus(tmp_path_factory) -> Path:
    return make_corpus(tmp_path_factory.mktemp("s2s-corpus"))[0]


@pytest.fixture(scope="module")
def experts(s2s_backbone, corpus, tmp_path_factory) -> list[Path]:
    root = tmp_path_factory.mktemp("s2s-experts")
    dirs = []
    for lang in ("en", "de"):
        args = ["train", "--out", str(root / lang), "--model-type", "expert", "--languages", lang]
        r = hlora(*args, "--backbone", str(s2s_backbone), "--backbone-mode", "seq2seq", "--train", str(corpus), *STEPS)
        assert r.returncode == 0, r.stderr[-2000:]
        dirs.append(root / lang / "best")
    return dirs


def decode_rows(model_dir: Path, corpus: Path, out: Path, *extra: str) -> list[dict]:
    r = hlora("decode", str(corpus), "--model", str(model_dir), "-o", str(out), *extra)
    assert r.returncode == 0, r.stderr[-2000:]
    return [json.loads(line) for line in out.read_text().splitlines()]


def test_hlora_seq2seq_trains_lowers_its_loss_and_decodes(s2s_backbone, corpus, tmp_path):
    r = hlora(
        "train",
        "--out",
        str(tmp_path / "run"),
        "--model-type",
        "hlora",
        "--k",
        "1",
        "--backbone",
        str(s2s_backbone),
        "--backbone-mode",
        "seq2seq",
        "--train",
        str(corpus),
        "--dev",
        str(corpus),
        "--eval-every",
        "3",
        "--lr",
        "1e-2",
        *STEPS[:1],
        "8",
        *STEPS[2:],
    )
    assert r.returncode == 0, r.stderr[-2000:]
    records = [json.loads(x) for x in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    steps = [x for x in records if "ce" in x]
    assert len(steps) == 8 and steps[-1]["ce"] < steps[0]["ce"]  # the decoder's cross-entropy falls
    assert any("dev_cer" in x for x in records)
    config = json.loads((tmp_path / "run" / "best" / "config.json").read_text())
    assert config["backbone_mode"] == "seq2seq" and config["layout"]["decoder"] == "routed"
    rows = decode_rows(tmp_path / "run" / "best", corpus, tmp_path / "hyp.jsonl")
    assert len(rows) == 8 and {row["lang"] for row in rows} <= {"en", "de"}
    meta = json.loads((tmp_path / "hyp.meta.json").read_text())
    assert meta["beams"] == 1 and meta["max_tokens_per_second"] == 12.0
    beam = ["--mode", "oracle", "--decoder", "beam"]
    oracle = decode_rows(tmp_path / "run" / "best", corpus, tmp_path / "o.jsonl", *beam)
    assert [row["lang"] for row in oracle] == [row["id"][:2] for row in oracle]


def test_seq2seq_settings_are_checked_before_work(s2s_backbone, corpus, tmp_path):
    base = ["train", "--out", str(tmp_path / "x"), "--backbone", str(s2s_backbone), "--train", str(corpus), *STEPS]
    r = hlora(*base, "--model-type", "ctc", "--backbone-mode", "seq2seq")
    assert r.returncode != 0 and "needs a LoRA model type" in r.stderr
    r = hlora(*base, "--model-type", "hlora", "--k", "1", "--backbone-mode", "seq2seq", "--vocab", str(corpus))
    assert r.returncode != 0 and "drop --vocab" in r.stderr
    r = hlora(*base, "--model-type", "hlora", "--k", "1", "--backbone-mode", "s2s")
    assert r.returncode != 0 and "unknown --backbone-mode s2s" in r.stderr
    assert not (tmp_path / "x").exists()


def test_experts_fuse_and_distil_into_seq2seq_models(experts, corpus, tmp_path):
    for e in experts:
        assert json.loads((e / "config.json").read_text())["backbone_mode"] == "seq2seq"
    fuse_steps = STEPS[:-2]  # the experts bring their rank
    out = ["--out", str(tmp_path / "mole"), "--train", str(corpus)]
    r = hlora("fuse", *map(str, experts), "--l1", "1", *out, *fuse_steps)
    assert r.returncode == 0, r.stderr[-2000:]
    mole = load_model(tmp_path / "mole" / "best")
    assert mole.config.seq2seq and mole.layout.describe() == (
        "layer 1 experts fused, LID after layer 1, layer 2 per language, decoder per language"
    )
    # the experts' decoder LoRA are in the mole model, as trained (only fusion and router train)
    expert_en = load_model(experts[0])
    for name, p in expert_en.named_parameters():
        if ".lora_" in name and "decoder" in name:
            assert torch.equal(dict(mole.named_parameters())[name][0], p[0])
    aware = decode_rows(tmp_path / "mole" / "best", corpus, tmp_path / "aware.jsonl", "--mode", "oracle")
    agnostic = decode_rows(tmp_path / "mole" / "best", corpus, tmp_path / "agnostic.jsonl")
    assert len(aware) == len(agnostic) == 8
    r = hlora("lid", str(corpus), "--model", str(tmp_path / "mole" / "best"), "-o", str(tmp_path / "lid.jsonl"))
    assert r.returncode == 0, r.stderr[-2000:]
    lid = [json.loads(x) for x in (tmp_path / "lid.jsonl").read_text().splitlines()]
    assert {x["lang"] for x in lid} <= {"en", "de"} and all(set(x["lang_probs"]) <= {"en", "de"} for x in lid)

    r = hlora("distill", *map(str, experts), "--out", str(tmp_path / "student"), "--train", str(corpus), *STEPS)
    assert r.returncode == 0, r.stderr[-2000:]
    records = [json.loads(x) for x in (tmp_path / "student" / "metrics.jsonl").read_text().splitlines()]
    assert all(x["kd_cos"] > 0 and x["kd_js"] >= 0 for x in records if "kd_cos" in x)
    student = load_model(tmp_path / "student" / "best")
    assert student.config.model_type == "student" and student.config.layout.decoder == "shared"
    assert len(decode_rows(tmp_path / "student" / "best", corpus, tmp_path / "s.jsonl")) == 8


def test_layerwise_distillation_covers_encoder_and_decoder_layers(experts, corpus, tmp_path):
    cfg = load_config(None, {"model_type": "student", "experts": [str(e) for e in experts], "train": str(corpus)})
    cfg.max_steps, cfg.batch_seconds, cfg.lora_rank, cfg.num_workers = 1, 3.0, 4, 0
    trainer = Trainer(cfg, tmp_path / "run")
    batch, feats = trainer.load_batch(trainer.train_data, [0, 5])
    out, parts = trainer._forward(batch, feats, "oracle")  # the decoder readout's loss (model/readout.py)
    n_layers = trainer.model.backbone.num_layers + len(trainer.model.backbone.decoder_layers())
    assert len(out.hidden) == trainer.model.backbone.num_layers  # the encoder's; the decoder's follow
    assert n_layers == 4
    assert float(parts.kd_cos) > 0 and float(parts.kd_js) > 0
    parts.total.backward()
    grads = [m.lora_A.grad for m in trainer.model.readout.decoder_lora]
    assert all(g is not None and float(g.abs().sum()) > 0 for g in grads)  # the decoder's LoRA learn


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_seq2seq_trains_in_bf16_and_decodes_with_beams_on_the_gpu(s2s_backbone, corpus, tmp_path):
    args = ["--model-type", "hlora", "--k", "1", "--backbone", str(s2s_backbone), "--backbone-mode", "seq2seq"]
    gpu = ["--device", "cuda", "--dtype", "bf16"]
    r = hlora("train", "--out", str(tmp_path / "run"), *args, "--train", str(corpus), *STEPS, *gpu)
    assert r.returncode == 0, r.stderr[-2000:]
    records = [json.loads(x) for x in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    assert all(np.isfinite(x["ce"]) for x in records if "ce" in x)
    beams = ["--decoder", "beam", "--beam-width", "2"]
    rows = decode_rows(tmp_path / "run" / "best", corpus, tmp_path / "hyp.jsonl", *gpu, *beams)
    meta = json.loads((tmp_path / "hyp.meta.json").read_text())
    assert len(rows) == 8 and meta["device"].startswith("cuda") and meta["beams"] == 2


def test_seq2seq_targets_are_words_as_written_not_spaced_characters(whisper_base, tmp_path):
    """Whisper's tokenizer reads words: `保险` is one token it knows, `保 险` two it never saw together.
    The spaced characters a CTC head learns for ja/ko/zh would teach the decoder to write homophones
    (seen on real Mandarin: 保险 -> 保显 after fine-tuning)."""
    from hlora_cli.data.manifest import Utterance, write_manifest
    from hlora_cli.data.vocab import build_vocab
    from hlora_cli.train.data import load_examples
    from hlora_cli.train.targets import WhisperTokens
    from tests.data.helpers import write_audio
    from text_normalization import normalize

    utts = [
        Utterance("zh0", str(write_audio(tmp_path / "zh0.wav", 1.0)), "zh", "本保險每年一百五十元。"),
        Utterance("ko0", str(write_audio(tmp_path / "ko0.wav", 1.0)), "ko", "저 식당 음식이 정말 맛있나 봐요."),
    ]
    for u in utts:
        u.text_norm = normalize(u.text, u.lang)  # as `hlora normalize` writes it: characters spaced
    write_manifest(tmp_path / "t.jsonl", utts)
    tokens = WhisperTokens(str(whisper_base), ["ko", "zh"])
    examples = load_examples(tmp_path / "t.jsonl", tokens, ["ko", "zh"], True, 30.0)
    written = {e.utt.id: tokens.tokenizer.decode(e.targets) for e in examples.examples}
    assert written == {"zh0": "本保险每年一百五十元", "ko0": "저 식당 음식이 정말 맛있나 봐요"}
    # a CTC head's targets stay characters
    ctc = load_examples(tmp_path / "t.jsonl", build_vocab(utts), ["ko", "zh"], False, 30.0)
    assert [len(e.targets) for e in ctc.examples] == [10, 13]
