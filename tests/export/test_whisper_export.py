"""`hlora export hf` of a seq2seq model: a plain transformers Whisper, every LoRA folded, its
generation config forcing the language, writes the ids `hlora` decodes with that language."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import soundfile as sf
import torch
from transformers import GenerationConfig, WhisperForConditionalGeneration, WhisperProcessor, pipeline

from hlora_cli.model import build_model, load_model, save_model
from hlora_cli.model.backbone import _hf_config
from hlora_cli.model.whisper_decoder import looping, token_budget
from tests.conftest import randomize_adapters, waves
from tests.helpers import run_cli
from tests.model.conftest import decode, s2s_config
from text_normalization import normalize

WAVS = waves([1.0, 1.6, 1.2], seed=7)


def _model_dir(whisper_base: Path, root: Path, model_type: str, encoder_input: str = "30s") -> Path:
    model = build_model(s2s_config(whisper_base, model_type, encoder_input)).eval()
    randomize_adapters(model, scale=0.05)  # every language's LoRA differs, encoder and decoder
    return save_model(model, root / f"{model_type}-{encoder_input}")


def _generate(
    model: WhisperForConditionalGeneration, processor: WhisperProcessor, max_new_tokens: int = 12, **kw
) -> list[list[int]]:
    special = set(processor.tokenizer.all_special_ids)
    out = []
    for w in WAVS:
        feats = processor.feature_extractor(w, sampling_rate=16000, return_tensors="pt").input_features
        with torch.no_grad():
            ids = model.generate(feats, max_new_tokens=max_new_tokens, do_sample=False, **kw)
        out.append([t for t in ids[0].tolist() if t not in special])
    return out


@pytest.mark.parametrize("model_type", ["hlora", "shared-lora"])
def test_exported_whisper_generates_what_hlora_decodes_for_the_language(model_type, whisper_base, tmp_path):
    model_dir = _model_dir(whisper_base, tmp_path, model_type)
    model = load_model(model_dir).eval()
    exported = {}
    for lang in ("fr", "de"):
        out = tmp_path / f"hf-{lang}"
        r = run_cli("export", "hf", model_dir, "--lang", lang, "-o", out)
        assert f"({lang}) -> {out}" in " ".join(r.stdout.split())
        whisper = WhisperForConditionalGeneration.from_pretrained(out).eval()
        processor = WhisperProcessor.from_pretrained(out)
        assert GenerationConfig.from_pretrained(out).language == lang
        assert not any(".lora_" in n for n in whisper.state_dict())
        # no language passed: the generation config forces it, and Whisper's detection never runs
        exported[lang] = _generate(whisper, processor)
        ours = decode(model, WAVS, [lang] * len(WAVS))
        assert exported[lang] == ours and all(ours)
    # the pipeline searches with 5 beams (as openai's whisper): hlora's beam search of width 5
    asr = pipeline("automatic-speech-recognition", model=str(tmp_path / "hf-de"), device="cpu")
    said = asr({"raw": WAVS[0], "sampling_rate": 16000}, generate_kwargs={"max_new_tokens": 12})["text"]
    beams = decode(model, WAVS[:1], ["de"], num_beams=5)[0]
    assert said.strip() == processor.tokenizer.decode(beams, skip_special_tokens=True).strip()
    # `hlora decode --whisper` decodes an export in its forced language, without detection
    (tmp_path / "wav").mkdir()
    for i, w in enumerate(WAVS):
        sf.write(tmp_path / "wav" / f"u{i}.wav", w, 16000)
    run_cli("decode", tmp_path / "wav", "--whisper", tmp_path / "hf-de", "--max-tokens-per-second", "5",
            "--loop-ngram", "0", "-o", tmp_path / "hyp.jsonl")  # fmt: skip
    rows = [json.loads(line) for line in (tmp_path / "hyp.jsonl").read_text().splitlines()]
    # 5 tokens/s + 10: 15, 18 and 16 tokens; batched together, each is still cut to its own budget
    budgets = [token_budget(len(w) / 16000, 5.0) for w in WAVS]
    assert budgets == [15, 18, 16]
    longest = _generate(whisper, processor, max_new_tokens=18)  # whisper: the German export
    assert all(len(ids) == 18 for ids in longest)  # a tiny random model loops to its cap
    texts = [
        normalize(processor.tokenizer.decode(ids[:n]).strip(), "de") for ids, n in zip(longest, budgets, strict=True)
    ]
    assert [(r["lang"], r["lang_probs"], r["text"]) for r in rows] == [("de", {"de": 1.0}, t) for t in texts]
    if model_type == "hlora":
        _check_loop_fallback(model_dir, tmp_path, whisper, processor)
    r = run_cli("decode", tmp_path / "wav", "--whisper", tmp_path / "hf-de", "--whisper-languages", "de,fr",
                "-o", tmp_path / "x.jsonl", check=False)  # fmt: skip
    assert r.returncode == 2 and "forces language de" in r.stderr and not (tmp_path / "x.jsonl").exists()
    # The LoRA are folded in: the plain Whisper (no LoRA) forced to French writes other ids.
    plain = WhisperForConditionalGeneration(_hf_config(model.config.backbone))
    plain.load_state_dict(
        {n.replace(".base.", "."): t for n, t in model.backbone.generator.state_dict().items() if ".lora_" not in n}
    )
    plain.generation_config = model.backbone.generator.generation_config
    assert _generate(plain.eval(), processor, language="fr") != exported["fr"]
    if model_type == "hlora":  # routed encoder top layer and decoder: each language its own weights
        de = WhisperForConditionalGeneration.from_pretrained(tmp_path / "hf-de")
        fr = WhisperForConditionalGeneration.from_pretrained(tmp_path / "hf-fr")
        for name in ("model.encoder.layers.1.fc1.weight", "model.decoder.layers.0.encoder_attn.q_proj.weight"):
            assert not torch.equal(de.state_dict()[name], fr.state_dict()[name])
        assert torch.equal(de.state_dict()["model.encoder.layers.0.fc1.weight"],
                           fr.state_dict()["model.encoder.layers.0.fc1.weight"])  # fmt: skip


def _check_loop_fallback(model_dir: Path, tmp_path: Path, whisper, processor) -> None:
    """A hypothesis that loops by whisper's compression-ratio test is generated once more with
    repeated 4-grams forbidden (--loop-ngram 4, the default); --loop-ngram 0 keeps it. The same in
    zero-shot decoding of the export and in the model's own (oracle German) decoding."""
    budgets = [token_budget(len(w) / 16000, 30.0) for w in WAVS]  # 40, 58, 46: within 64 positions
    tok = processor.tokenizer
    plain = _generate(whisper, processor, max(budgets))
    plain = [tok.decode(ids[:n]).strip() for ids, n in zip(plain, budgets, strict=True)]
    guarded = _generate(whisper, processor, max(budgets), no_repeat_ngram_size=4)
    guarded = [tok.decode(ids[:n]).strip() for ids, n in zip(guarded, budgets, strict=True)]
    loops = [looping(t) for t in plain]
    assert any(loops) and all(g != t for t, g, loop in zip(plain, guarded, loops, strict=True) if loop)
    expected = {
        "0": [normalize(t, "de") for t in plain],
        "4": [normalize(g if loop else t, "de") for t, g, loop in zip(plain, guarded, loops, strict=True)],
    }
    wav, fast = tmp_path / "wav", ["--max-tokens-per-second", "30"]
    for n in ("0", "4"):
        runs = {
            "zero-shot": ("--whisper", tmp_path / "hf-de"),
            "model": ("--model", model_dir, "--mode", "oracle", "--lang", "de", "--decoder", "greedy"),
        }
        for name, how in runs.items():
            out = tmp_path / f"loop-{name}-{n}.jsonl"
            run_cli("decode", wav, *how, *fast, "--loop-ngram", n, "-o", out)
            rows = [json.loads(line) for line in out.read_text().splitlines()]
            assert [r["text"] for r in rows] == expected[n], (name, n)


def test_loop_test_is_whispers_compression_ratio():
    assert looping("재 도 " * 30) and looping("the the the the the the the the the the the the the the")
    assert not looping("이번 동아리 축제에 노래자랑 대회가 있는데 상품을 아주 많이 준대") and not looping("")


def test_whisper_export_refusals_write_nothing(whisper_base, tmp_path):
    routed = _model_dir(whisper_base, tmp_path, "hlora")
    r = run_cli("export", "hf", routed, "-o", tmp_path / "a", check=False)
    assert r.returncode == 2 and "choose one with --lang (de, fr, en)" in r.stderr
    r = run_cli("export", "peft", routed, "-o", tmp_path / "a", check=False)
    assert r.returncode == 2 and "`hlora export hf --lang LANG` writes it as a transformers Whisper" in r.stderr
    true_length = _model_dir(whisper_base, tmp_path, "hlora", "true-length")
    r = run_cli("export", "hf", true_length, "--lang", "de", "-o", tmp_path / "a", check=False)
    assert r.returncode == 2 and "--encoder-input true-length" in r.stderr and "--allow-30s-input" in r.stderr
    assert not (tmp_path / "a").exists()
    run_cli("export", "hf", true_length, "--lang", "de", "-o", tmp_path / "a", "--allow-30s-input")
    gen_file = tmp_path / "a" / "generation_config.json"
    gen = json.loads(gen_file.read_text())
    assert gen["language"] == "de"
    # a generation config may name the language as transformers accepts it; one that has no token is refused
    (tmp_path / "wav").mkdir()
    sf.write(tmp_path / "wav" / "u.wav", WAVS[0], 16000)
    gen_file.write_text(json.dumps({**gen, "language": "german"}))
    run_cli("decode", tmp_path / "wav", "--whisper", tmp_path / "a", "-o", tmp_path / "g.jsonl")
    assert json.loads((tmp_path / "g.jsonl").read_text())["lang"] == "de"
    gen_file.write_text(json.dumps({**gen, "language": "klingon"}))
    r = run_cli("decode", tmp_path / "wav", "--whisper", tmp_path / "a", "-o", tmp_path / "k.jsonl", check=False)
    assert r.returncode == 2 and f"{tmp_path / 'a'}: its generation config forces language 'klingon'" in r.stderr
    # nothing routed and no --lang: Whisper's own language detection stays
    r = run_cli("export", "hf", _model_dir(whisper_base, tmp_path, "shared-lora"), "-o", tmp_path / "s")
    assert "(language detected)" in r.stdout and GenerationConfig.from_pretrained(tmp_path / "s").language is None
