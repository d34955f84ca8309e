"""`hlora export hf` and `hlora export peft`: the exported models give what hlora gives."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from hlora_cli.data.audio import load_audio
from hlora_cli.data.manifest import read_manifest
from hlora_cli.model import load_backbone
from hlora_cli.model.backbone import Features
from tests.conftest import LANGS, waves
from tests.export.conftest import tiny_model_dir
from tests.helpers import run_cli


@pytest.fixture(scope="module")
def speech(tmp_path_factory) -> Path:
    """Three German sentences spoken by espeak-ng."""
    from tests.speech import synthesize

    return synthesize(tmp_path_factory.mktemp("tts"), per_language=3, languages=("de",))


@pytest.mark.parametrize("kind", ["hubert", "wav2vec2"])
def test_hf_export_transcribes_with_the_pipeline_as_hlora_oracle(kind, speech, tmp_path):
    from transformers import pipeline

    model_dir = tiny_model_dir(kind, tmp_path)
    out = tmp_path / "hf"
    r = run_cli("export", "hf", model_dir, "--lang", "de", "-o", out)
    assert "-> " in r.stdout and (out / "config.json").is_file() and (out / "processor_config.json").is_file()
    run_cli("decode", speech, "--model", model_dir, "--mode", "oracle", "--lang", "de", "-o", tmp_path / "hyp.jsonl")
    ours = {h["id"]: h["text"] for h in map(json.loads, (tmp_path / "hyp.jsonl").read_text().splitlines())}
    asr = pipeline("automatic-speech-recognition", model=str(out), device="cpu")
    theirs = {}
    for utt in read_manifest(speech):
        audio = load_audio(utt.audio)
        theirs[utt.id] = asr({"raw": audio, "sampling_rate": 16000})["text"]
    assert set(theirs) == set(ours) and any(t.strip() for t in ours.values())
    # hlora normalises whitespace (a run of `|` is one space); the tokenizer keeps each `|` as a space
    assert {u: " ".join(t.split()) for u, t in theirs.items()} == ours


def test_hf_export_refuses_whisper_and_needs_a_language_for_a_routed_model(tmp_path):
    whisper = tiny_model_dir("whisper", tmp_path)
    r = run_cli("export", "hf", whisper, "--lang", "de", "-o", tmp_path / "w", check=False)
    assert r.returncode == 2 and "no transformers CTC class" in r.stderr and "hlora export onnx" in r.stderr
    hubert = tiny_model_dir("hubert", tmp_path)
    r = run_cli("export", "hf", hubert, "-o", tmp_path / "h", check=False)
    assert r.returncode == 2 and "choose one with --lang (en, de, fr, ja)" in r.stderr
    r = run_cli("export", "hf", hubert, "--lang", "xx", "-o", tmp_path / "h", check=False)
    assert r.returncode == 2 and "xx have no LoRA/head" in r.stderr
    assert not (tmp_path / "h").exists()
    (tmp_path / "h").mkdir()
    (tmp_path / "h" / "keep.txt").write_text("mine")
    r = run_cli("export", "hf", hubert, "--lang", "de", "-o", tmp_path / "h", check=False)
    assert r.returncode == 2 and "exists and is not empty" in r.stderr
    assert (tmp_path / "h" / "keep.txt").read_text() == "mine"
    run_cli("export", "hf", hubert, "--lang", "de", "-o", tmp_path / "h", "--overwrite")
    assert not (tmp_path / "h" / "keep.txt").exists() and (tmp_path / "h" / "model.safetensors").is_file()


def _encoder_output(model, feats: Features, lang: int) -> torch.Tensor:
    with torch.no_grad():
        out = model(feats, "oracle", torch.tensor([lang] * feats.values.shape[0]), hidden=True)
        return model.backbone.finish(out.hidden[-1])


@pytest.mark.parametrize(
    ("kind", "model_type"),
    [("whisper", "hlora"), ("hubert", "hlora"), ("wav2vec2", "shared-lora"), ("whisper", "mole")],
)
def test_peft_adapters_on_the_plain_encoder_give_our_encoder_outputs(kind, model_type, tmp_path):
    from peft import PeftModel

    from hlora_cli.model import load_model

    extra = {"l1": 2} if model_type == "mole" else {}
    model_dir = tiny_model_dir(kind, tmp_path, model_type, **extra)
    out = tmp_path / "peft"
    run_cli("export", "peft", model_dir, "-o", out)
    model = load_model(model_dir)
    routed = bool(model.layout.routed)
    assert sorted(p.name for p in out.iterdir()) == sorted(["README.md", "shared"] + (LANGS if routed else []))
    if kind == "whisper":  # transformers' Whisper encoder takes 30 s exactly
        feats = Features(torch.randn(1, 80, 3000), torch.tensor([3000]))
        inputs = {"input_features": feats.values}
    else:
        feats = model.prepare(waves([1.2], seed=1))
        inputs = {"input_values": feats.values}
    for lang, code in enumerate(LANGS if routed else ["shared"]):
        base = load_backbone(model.config.backbone).module
        peft_model = PeftModel.from_pretrained(base, str(out / code)).eval()
        with torch.no_grad():
            theirs = peft_model(**inputs).last_hidden_state
        ours = _encoder_output(model, feats, lang)
        torch.testing.assert_close(theirs, ours, atol=1e-4, rtol=1e-4)
        bare = load_backbone(model.config.backbone).module
        with torch.no_grad():
            assert (bare(**inputs).last_hidden_state - ours).abs().max() > 1e-3  # the adapters matter
    if routed:
        head = json.loads((out / "de" / "vocab.json").read_text())
        assert head == model.vocab(1)
    if model_type == "mole":
        cfg = json.loads((out / "de" / "adapter_config.json").read_text())
        fused = [n for n in cfg["rank_pattern"] if "layers.0." in n or "layers.1." in n]
        assert fused and all(cfg["rank_pattern"][n] == 4 * 8 for n in fused)


def test_peft_and_hf_exports_refuse_a_ctc_model(tmp_path):
    model_dir = tiny_model_dir("hubert", tmp_path, "ctc")
    r = run_cli("export", "hf", model_dir, "-o", tmp_path / "h", check=False)
    assert r.returncode == 2 and "language-prefix token (<de>)" in r.stderr and not (tmp_path / "h").exists()
    r = run_cli("export", "peft", model_dir, "-o", tmp_path / "p", check=False)
    assert r.returncode == 2 and "a ctc model has no LoRA" in r.stderr
    assert not (tmp_path / "p").exists()
