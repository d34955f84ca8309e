"""The real Whisper-base as a seq2seq model: with every LoRA zero it writes the zero-shot text on the
real clips, and recordings longer than Whisper's 30 s window are decoded (zero-shot and seq2seq)
instead of skipped."""

from __future__ import annotations

import json
from pathlib import Path

import jiwer
import numpy as np
import pytest
import soundfile as sf

from hlora_cli.data.manifest import read_manifest
from hlora_cli.model import BackboneRef, ModelConfig, build_model, save_model
from tests.helpers import hlora
from text_normalization import normalize

CLIPS = ["leopard-test", "leopard-test_de", "leopard-test_fr", "cheetah-test_es"]  # en de fr es
LONG = ["leopard-test", "cheetah-test_en", "cheetah-test_en_norm"] * 2  # 34 s of English


@pytest.fixture(scope="module")
def zero_lora_model(whisper_base, tmp_path_factory) -> Path:
    """HLoRA k=3 on the whole Whisper-base, 30 s input, every LoRA as initialised (B = 0)."""
    config = ModelConfig(
        "hlora",
        BackboneRef("whisper", source=str(whisper_base)),
        ["de", "en", "es", "fr"],
        k=3,
        backbone_mode="seq2seq",
        encoder_input="30s",
    )
    out = tmp_path_factory.mktemp("s2s-zero") / "model"
    save_model(build_model(config), out)
    return out


def subset(real_manifest: Path, ids: list[str], out: Path) -> Path:
    rows = {json.loads(x)["id"]: json.loads(x) for x in real_manifest.read_text().splitlines()}
    for i in ids:
        rows[i]["audio"] = str(real_manifest.parent / rows[i]["audio"])
    out.write_text("".join(json.dumps(rows[i], ensure_ascii=False) + "\n" for i in ids), encoding="utf-8")
    return out


def rows(path: Path) -> dict[str, dict]:
    return {r["id"]: r for r in map(json.loads, path.read_text().splitlines())}


def test_zero_lora_reproduces_zero_shot_text_on_real_clips(zero_lora_model, whisper_base, real_manifest, tmp_path):
    manifest = subset(real_manifest, CLIPS, tmp_path / "clips.jsonl")
    r = hlora("decode", str(manifest), "--whisper", str(whisper_base), "-o", str(tmp_path / "zs.jsonl"))
    assert r.returncode == 0, r.stderr[-2000:]
    oracle = ["--mode", "oracle"]
    r = hlora("decode", str(manifest), "--model", str(zero_lora_model), *oracle, "-o", str(tmp_path / "s.jsonl"))
    assert r.returncode == 0, r.stderr[-2000:]
    zero_shot, ours = rows(tmp_path / "zs.jsonl"), rows(tmp_path / "s.jsonl")
    assert [zero_shot[i]["lang"] for i in CLIPS] == ["en", "de", "fr", "es"]  # Whisper's own LID agrees
    for i in CLIPS:  # both written normalised
        assert ours[i]["text"] == zero_shot[i]["text"] and ours[i]["text"]


def test_long_recording_is_decoded_in_windows(zero_lora_model, whisper_base, real_manifest, tmp_path):
    """34 s of joined English clips (0.3 s gaps): one result each from zero-shot and seq2seq,
    its words close to the clips' transcripts joined (was: skipped as longer than 30 s)."""
    utts = {u.id: u for u in read_manifest(real_manifest)}
    gap = np.zeros(int(0.3 * 16000), np.float32)
    audio = np.concatenate([x for i in LONG for x in (sf.read(utts[i].audio, dtype="float32")[0], gap)])
    sf.write(str(tmp_path / "long.wav"), audio, 16000)
    reference = " ".join(utts[i].text for i in LONG)
    record = {"id": "long_en", "audio": str(tmp_path / "long.wav"), "lang": "en", "text": reference}
    (tmp_path / "long.jsonl").write_text(json.dumps(record) + "\n")
    assert len(audio) / 16000 > 33
    for name, flags in (("zs", ["--whisper", str(whisper_base)]), ("s2s", ["--model", str(zero_lora_model)])):
        extra = ["--mode", "oracle"] if name == "s2s" else []
        r = hlora("decode", str(tmp_path / "long.jsonl"), *flags, *extra, "-o", str(tmp_path / f"{name}.jsonl"))
        assert r.returncode == 0, r.stderr[-2000:]
        got = rows(tmp_path / f"{name}.jsonl")["long_en"]
        ref = normalize(reference, "en")
        assert len(ref.split()) > 60 and jiwer.wer(ref, normalize(got["text"], "en")) < 0.25, (name, got["text"])
