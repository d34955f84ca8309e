"""Inputs that used to give a wrong result with exit 0 (reliability, round 3) now stop with one
`error:` line naming the file or value, through `main()`."""

import json
import shutil

import pytest
import torch
from safetensors.torch import load_file, save_file

from hlora_cli.model import build_model, save_model
from tests.conftest import tiny_config
from tests.data.helpers import write_audio
from tests.helpers import run_main


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    root = tmp_path_factory.mktemp("silent")
    save_model(build_model(tiny_config("whisper", k=2)), root / "m")
    (root / "t.jsonl").write_text(
        json.dumps({"id": "u0", "audio": str(write_audio(root / "u0.wav", 0.6)), "lang": "en", "text": "a b"}) + "\n"
    )
    return root


def edited_model(world, tmp_path, **changes):
    shutil.copytree(world / "m", tmp_path / "m")
    config = json.loads((tmp_path / "m" / "config.json").read_text())
    (tmp_path / "m" / "config.json").write_text(json.dumps({**config, **changes}))
    return tmp_path / "m"


def test_a_newer_format_and_a_hand_edited_k(world, tmp_path):
    model = edited_model(world, tmp_path / "a", format_version=99)
    code, err = run_main("decode", world / "t.jsonl", "--model", model, "-o", tmp_path / "o.jsonl")
    assert code == 2 and err.strip() == (
        f"error: {model / 'config.json'}: not a valid hlora model config (format_version 99: written by a newer "
        "hlora (this one reads up to 2); upgrade hlora to load it)"
    ), err
    model = edited_model(world, tmp_path / "b", k="two")
    code, err = run_main("info", model)
    assert code == 2 and err.strip() == (
        f"error: {model / 'config.json'}: not a valid hlora model config (k must be a whole number of layers, "
        "got 'two')"
    ), err


def test_nan_adapters_are_refused(world, tmp_path):
    model = edited_model(world, tmp_path)
    weights = load_file(str(model / "adapters.safetensors"))
    name = sorted(weights)[0]
    weights[name] = torch.full_like(weights[name], float("nan"))
    save_file(weights, str(model / "adapters.safetensors"))
    code, err = run_main("decode", world / "t.jsonl", "--model", model, "-o", tmp_path / "o.jsonl")
    assert code == 2 and err.strip() == (
        f"error: {model / 'adapters.safetensors'}: {name} holds NaN or infinite values; the training diverged: "
        "retrain, e.g. with a lower --lr"
    ), err
    assert not (tmp_path / "o.jsonl").exists()


def test_score_with_empty_references(world, tmp_path):
    row = json.loads((world / "t.jsonl").read_text())
    (tmp_path / "ref.jsonl").write_text(json.dumps({**row, "text": "!"}) + "\n")
    (tmp_path / "hyp.jsonl").write_text('{"id": "u0", "lang": "en", "text": "a b c d"}\n')
    code, err = run_main("score", tmp_path / "ref.jsonl", tmp_path / "hyp.jsonl")
    assert code == 2 and err.strip() == (
        f"error: {tmp_path / 'ref.jsonl'} vs {tmp_path / 'hyp.jsonl'}: language en: its 1 reference(s) hold no "
        "words once normalized, so an error rate is undefined: score against references with text"
    ), err


def test_train_refuses_duplicate_ids(world, tmp_path):
    row = (world / "t.jsonl").read_text()
    (tmp_path / "dup.jsonl").write_text(row + row)
    assert run_main("prepare", "vocab", world / "t.jsonl", "-o", tmp_path / "v.json")[0] == 0
    code, err = run_main(
        "train", "--train", tmp_path / "dup.jsonl", "--model-type", "shared-lora", "--backbone", "b", "--vocab",
        tmp_path / "v.json", "--max-steps", "1", "--out", tmp_path / "run",
    )  # fmt: skip
    assert code == 2, err
    assert err.strip().startswith(
        f"error: {tmp_path / 'dup.jsonl'}: 1 utterance id(s) appear more than once (e.g. 'u0')"
    )
    assert not (tmp_path / "run").exists()


def test_whisper_without_tokenizer_or_language_tokens(world, whisper_base, tmp_path):
    from transformers import WhisperConfig, WhisperForConditionalGeneration

    from tests.conftest import TINY

    bare = tmp_path / "bare"
    WhisperForConditionalGeneration(WhisperConfig(**TINY["whisper"])).save_pretrained(bare)
    code, err = run_main("decode", world / "t.jsonl", "--whisper", bare, "-o", tmp_path / "o.jsonl")
    assert code == 2 and err.strip() == (
        f"error: {bare}: no tokenizer (tokenizer.json, or vocab.json and merges.txt); copy Whisper's tokenizer "
        "files into it"
    ), err
    for name in ("tokenizer.json", "tokenizer_config.json", "preprocessor_config.json"):
        shutil.copy(whisper_base / name, bare / name)
    code, err = run_main("decode", world / "t.jsonl", "--whisper", bare, "-o", tmp_path / "o.jsonl")
    assert code == 2 and err.strip() == (
        f"error: {bare}: its generation config has no language tokens (lang_to_id): zero-shot decoding needs a "
        "multilingual Whisper with its decoder and generation_config.json"
    ), err
    assert not (tmp_path / "o.jsonl").exists()
