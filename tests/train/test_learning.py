"""Proof that it learns: a tiny HLoRA on the real Whisper-base encoder overfits 2 x 16 espeak-ng
sentences (LID 100 %, training-set CER < 10 %) in a couple of CPU minutes."""

import json

import pytest

from tests.cli.test_info import hlora
from tests.speech import synthesize


@pytest.mark.slow
def test_hlora_on_whisper_base_overfits_espeak_sentences(whisper_base, tmp_path):
    manifest = synthesize(tmp_path / "tts")
    r = hlora(
        "train",
        "--out",
        str(tmp_path / "run"),
        "--model-type",
        "hlora",
        "--k",
        "2",
        "--backbone",
        str(whisper_base),
        "--train",
        str(manifest),
        "--dev",
        str(manifest),
        "--vocab",
        str(tmp_path / "tts" / "vocab.json"),
        "--lora-rank",
        "8",
        "--lr",
        "3e-3",
        "--lid-weight",
        "1.0",
        "--warmup-steps",
        "10",
        "--max-steps",
        "200",
        "--batch-seconds",
        "10",
        "--eval-every",
        "100",
        "--save-every",
        "100",
        "--seed",
        "0",
    )
    assert r.returncode == 0, r.stderr[-3000:]
    evals = [json.loads(x) for x in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines() if "dev_cer" in x]
    final = evals[-1]
    assert final["step"] == 200
    assert final["dev_lid_acc"] == 1.0
    assert final["dev_cer_en"] < 0.10 and final["dev_cer_de"] < 0.10, final
