"""Proof that it learns: a tiny HLoRA on the real Whisper-base encoder overfits 2 x 16 espeak-ng
sentences (LID 100 %, training-set CER < 10 %) in a couple of CPU minutes."""

import json

import pytest


@pytest.mark.slow
def test_hlora_on_whisper_base_overfits_espeak_sentences(espeak_run):
    run, _ = espeak_run
    evals = [json.loads(x) for x in (run / "metrics.jsonl").read_text().splitlines() if "dev_cer" in x]
    assert [e["step"] for e in evals] == [150, 300]
    final = evals[-1]
    assert final["dev_lid_acc"] == 1.0
    assert final["dev_cer_en"] < 0.10 and final["dev_cer_de"] < 0.10, final
    assert evals[0]["dev_cer"] > final["dev_cer"]
