"""Every `hlora export hf|peft` directory carries a model card (README.md, Hugging Face format): YAML
metadata a hub reads, the base model, the languages, the LoRA layout (k, rank, targets), the training
data and settings as the run recorded them, and the last dev scores."""

import json

import yaml

from tests.helpers import run_main
from tests.train.conftest import make_corpus, train_args
from tests.train.conftest import tiny_backbone as tiny_backbone  # the fixture, shared with tests/train


def card(path):
    text = (path / "README.md").read_text()
    _, front, body = text.split("---\n", 2)
    return yaml.safe_load(front), body


def test_hf_and_peft_exports_carry_a_model_card(tmp_path):
    from transformers import HubertConfig, HubertModel

    from tests.conftest import TINY

    hubert = tmp_path / "hubert"  # transformers has a CTC class for HuBERT (for Whisper's encoder it has none)
    HubertModel(HubertConfig(**TINY["hubert"])).save_pretrained(hubert)
    manifest, vocab = make_corpus(tmp_path / "data")
    run = tmp_path / "run"
    args = train_args(hubert, manifest, vocab, run, "--max-steps", "4", "--dev", str(manifest))
    assert run_main(*args, "--eval-every", "2", "--save-every", "2", "--lora-targets", "q,v")[0] == 0
    evals = [json.loads(x) for x in (run / "metrics.jsonl").read_text().splitlines() if "dev_cer" in x]
    code, err = run_main("export", "hf", run / "best", "--lang", "de", "-o", tmp_path / "hf")
    assert code == 0, err
    meta, body = card(tmp_path / "hf")
    assert meta == {
        "language": ["de"],
        "library_name": "transformers",
        "pipeline_tag": "automatic-speech-recognition",
        "tags": ["automatic-speech-recognition", "lora", "hlora"],
    }
    assert f"- Base model: `{hubert}` (" in body
    assert "k = 2 (shared lower layers" in body and "- LoRA: rank 4, alpha 16, on q, v." in body
    assert f"- `train`: {manifest}" in body and "- `max_steps`: 4" in body
    assert f"At step {evals[-1]['step']} of training" in body
    assert f"- cer_de: {evals[-1]['dev_cer_de']:.4f}" in body
    assert run_main("export", "peft", run / "best", "-o", tmp_path / "peft")[0] == 0
    meta, body = card(tmp_path / "peft")
    assert meta["library_name"] == "peft" and sorted(meta["language"]) == ["de", "en"]
    assert "`shared/`" in body


def test_a_model_outside_a_run_says_so(tiny_backbone, tmp_path):
    manifest, vocab = make_corpus(tmp_path / "data")
    assert run_main(*train_args(tiny_backbone, manifest, vocab, tmp_path / "run", "--max-steps", "1"))[0] == 0
    import shutil

    shutil.copytree(tmp_path / "run" / "best", tmp_path / "alone" / "model")
    assert run_main("export", "peft", tmp_path / "alone" / "model", "-o", tmp_path / "peft")[0] == 0
    _, body = card(tmp_path / "peft")
    assert "- Not recorded: the model directory was not inside a training run's directory." in body
    assert "- None recorded" in body
