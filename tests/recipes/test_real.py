"""recipes/real's results script: joined per-language outputs keep the whole decode's RTF, the table's
relative changes, and the papers' claims judged from the numbers (held or not)."""

import argparse
import importlib.util
import json
import sys
from pathlib import Path

RECIPE = Path(__file__).resolve().parents[2] / "recipes" / "real"


def results():
    spec = importlib.util.spec_from_file_location("real_results", RECIPE / "local" / "results.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


def scores(pooled: float, per_lang: dict[str, float] | None = None) -> dict:
    langs = per_lang or {"en": pooled, "ko": pooled, "zh": pooled}
    return {
        "languages": {lang: {"n": 10, "mer": v} for lang, v in langs.items()},
        "average": {"mer": sum(langs.values()) / len(langs), "mer_pooled": pooled},
        "lid_accuracy": 1.0,
        "rtf": 0.1,
    }


def test_join_sums_audio_and_wall_time(tmp_path):
    for lang, (audio, wall) in {"en": (10.0, 1.0), "ko": (30.0, 5.0)}.items():
        (tmp_path / f"x.{lang}.jsonl").write_text(f'{{"id": "{lang}1"}}\n')
        (tmp_path / f"x.{lang}.meta.json").write_text(json.dumps({"audio_seconds": audio, "wall_seconds": wall}))
    parts = [tmp_path / "x.en.jsonl", tmp_path / "x.ko.jsonl"]
    results().join(argparse.Namespace(out=tmp_path / "x.jsonl", parts=parts))
    assert (tmp_path / "x.jsonl").read_text() == '{"id": "en1"}\n{"id": "ko1"}\n'
    assert json.loads((tmp_path / "x.meta.json").read_text())["rtf"] == 0.15  # 6 s / 40 s, not a mean of RTFs


def test_table_and_claims():
    r = results()
    s = {
        "zero_shot": scores(0.40),
        "zero_shot_given": scores(0.30),
        "s2s_shared_lora": scores(0.20),
        "s2s_experts": scores(0.17),  # -15 % against shared LoRA
        "s2s_mole_l1_2_aware": scores(0.19),  # -5 %
        "s2s_hlora": scores(0.202),
        "s2s_hlora_oracle": scores(0.20),
        "ctc_shared_lora": scores(0.6, {"en": 0.9, "ko": 0.45, "zh": 0.7}),
        "ctc_hlora_k3": scores(0.5),
        "ctc_hlora_oracle": scores(0.45),
        "ctc_two_stage": scores(0.55),
    }
    rows = r.systems(["3"], ["2"], "3")
    table = r.table(s, rows, ("en", "ko", "zh"))
    experts = next(line for line in table if line.startswith("| experts, language given"))
    assert (
        experts == "| experts, language given | 17.0 | 17.0 | 17.0 | 17.0 | 17.0 | 100.0 | 0.100 | -43.3 % | -15.0 % |"
    )
    assert not any("MoLE L1=2, language-agnostic" in line for line in table)  # not decoded: no row
    claims = "\n".join(r.claims(s, ["2"], ["3"], "3"))
    assert (
        "experts (language given) >= 10 % relative below seq2seq shared LoRA: 17.0 against 20.0 (-15.0 %) — **holds**"
        in claims
    )
    assert (
        "MoLE L1=2 language-aware >= 10 % below shared LoRA: 19.0 against 20.0 (-5.0 %) — **does not hold**" in claims
    )
    assert "MoLE L1=2 language-agnostic >= 15 % below shared LoRA: not measured" in claims
    assert "s2s_hlora single pass within 2 % relative of its oracle: 20.2 against 20.0 (+1.0 %) — **holds**" in claims
    assert (
        "ctc_hlora_k3 single pass within 2 % relative of its oracle: 50.0 against 45.0 (+11.1 %) — **does not hold**"
        in claims
    )
    assert "s2s_experts >= 25 % below Whisper-base zero-shot (language given): 17.0 against 30.0" in claims
    assert "s2s_hlora >= 25 % below Whisper-base zero-shot (its own LID): 20.2 against 40.0" in claims
    assert "best CTC system below 50 % CER on ko: ctc_shared_lora 45.0 — **holds**" in claims
    assert "best CTC system below 50 % CER on zh: ctc_hlora_oracle 45.0 — **holds**" in claims
