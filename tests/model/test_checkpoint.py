import json

import pytest
import torch

from hlora_cli.errors import HloraError
from hlora_cli.files import atomic_write
from hlora_cli.model import BackboneRef, build_model, load_backbone, load_model, save_model
from hlora_cli.model.checkpoint import ADAPTERS, CONFIG
from tests.conftest import randomize_adapters, tiny_config, waves


def test_save_load_gives_identical_outputs(tiny_model, tmp_path):
    save_model(tiny_model, tmp_path / "m")
    assert sorted(p.name for p in (tmp_path / "m").iterdir()) == [ADAPTERS, CONFIG]
    config = json.loads((tmp_path / "m" / CONFIG).read_text())
    assert config["model_type"] == "hlora" and config["k"] == 2 and config["languages"] == ["en", "de", "fr", "ja"]
    assert config["backbone"]["fingerprint"] == tiny_model.backbone.fingerprint
    loaded = load_model(tmp_path / "m")
    feats = tiny_model.prepare(waves([0.9, 0.5], seed=8))
    with torch.no_grad():
        a, b = tiny_model(feats), loaded(feats)
    assert torch.equal(a.ctc_logprobs, b.ctc_logprobs) and torch.equal(a.lid_logprobs, b.lid_logprobs)


def test_a_model_directory_from_before_the_readout_loads_with_its_heads(tiny_model, tmp_path):
    """Directories written before the CTC heads became the model's readout name them ctc_heads.*."""
    from safetensors.torch import load_file, save_file

    randomize_adapters(tiny_model, seed=3)
    save_model(tiny_model, tmp_path / "m")
    saved = load_file(str(tmp_path / "m" / ADAPTERS))
    heads = [n for n in saved if n.startswith("readout.heads.")]
    assert len(heads) == 2 * len(tiny_model.languages)  # weight and bias of each language's head
    old = {n.replace("readout.", "ctc_heads.", 1) if n in heads else n: t for n, t in saved.items()}
    save_file(old, str(tmp_path / "m" / ADAPTERS))
    loaded = load_model(tmp_path / "m")
    for name in heads:
        assert torch.equal(dict(loaded.named_parameters())[name], saved[name])
    feats = tiny_model.prepare(waves([0.7], seed=2))
    with torch.no_grad():
        assert torch.equal(tiny_model.eval()(feats).ctc_logprobs, loaded(feats).ctc_logprobs)


def test_only_trainable_parameters_are_saved(tiny_model, tmp_path):
    from safetensors.torch import load_file

    save_model(tiny_model, tmp_path)
    saved = load_file(str(tmp_path / ADAPTERS))
    trainable, _ = tiny_model.parameter_counts()
    assert sum(t.numel() for t in saved.values()) == trainable
    assert not any(".base." in n for n in saved)


def test_wrong_backbone_is_a_clear_error(tmp_path):
    model = build_model(tiny_config("whisper"))
    save_model(model, tmp_path / "m")
    from transformers import WhisperConfig, WhisperModel

    torch.manual_seed(7)  # another whisper of the same shape, other weights
    WhisperModel(WhisperConfig(**model.config.backbone.config)).save_pretrained(tmp_path / "other")
    other = load_backbone(BackboneRef("whisper", source=str(tmp_path / "other")))
    with pytest.raises(
        HloraError,
        match=rf"backbone {tmp_path / 'other'} has fingerprint {other.fingerprint}, "
        rf"but {tmp_path / 'm'} was trained on .* fingerprint {model.backbone.fingerprint}",
    ):
        load_model(tmp_path / "m", backbone=str(tmp_path / "other"))


def test_missing_or_broken_model_dir_is_a_clear_error(tmp_path):
    with pytest.raises(HloraError, match=r"config.json: no such file; is .* a model directory\?"):
        load_model(tmp_path)
    (tmp_path / CONFIG).write_text("{not json")
    with pytest.raises(HloraError, match="config.json: not a valid hlora model config"):
        load_model(tmp_path)


def test_merged_model_is_saved_unmerged_only(tiny_model, tmp_path):
    tiny_model.merge()
    with pytest.raises(HloraError, match="save the model unmerged"):
        save_model(tiny_model, tmp_path)


def test_atomic_write_keeps_the_old_file_when_writing_fails(tmp_path):
    target = tmp_path / "adapters.safetensors"
    target.write_text("old")

    def fail(p):
        p.write_text("half")
        raise RuntimeError("disk full")

    with pytest.raises(RuntimeError):
        atomic_write(target, fail)
    assert target.read_text() == "old" and [p.name for p in tmp_path.iterdir()] == [target.name]


def test_baseline_and_lidlora_round_trip(tmp_path):
    for model_type in ("baseline", "lidlora"):
        model = build_model(tiny_config("hubert", model_type)).eval()
        randomize_adapters(model, seed=3)
        save_model(model, tmp_path / model_type)
        loaded = load_model(tmp_path / model_type)
        feats = model.prepare(waves([0.6], seed=9))
        with torch.no_grad():
            assert torch.equal(
                model(feats, "oracle", torch.tensor([1])).ctc_logprobs,
                loaded(feats, "oracle", torch.tensor([1])).ctc_logprobs,
            )


def test_a_reader_sees_the_old_or_the_new_model_while_a_training_swaps_it(tmp_path):
    """train/state.save_model_dir replaces RUN/best while `decode RUN/best` may read it: every read
    gives one whole model (its config and weights from one directory), never a missing file."""
    import threading

    import torch

    from hlora_cli.model import build_model
    from hlora_cli.model.checkpoint import read_model_dir
    from hlora_cli.train.state import save_model_dir
    from tests.conftest import randomize_adapters, tiny_config

    models = []
    for seed in (1, 2):
        m = build_model(tiny_config("whisper", k=2))
        randomize_adapters(m, seed=seed)
        models.append(m)
    key = sorted(models[0].saved_state_dict())[-1]
    versions = [m.saved_state_dict()[key].clone() for m in models]
    assert not torch.equal(*versions)
    best = tmp_path / "best"
    save_model_dir(models[0], best)
    stop, errors = threading.Event(), []

    def writer():
        i = 0
        while not stop.is_set():
            i += 1
            save_model_dir(models[i % 2], best)

    thread = threading.Thread(target=writer)
    thread.start()
    try:
        for _ in range(150):
            try:
                _, state = read_model_dir(best)
            except Exception as e:  # noqa: BLE001  (any failure is the finding)
                errors.append(repr(e))
                continue
            assert any(torch.equal(state[key], v) for v in versions)
    finally:
        stop.set()
        thread.join()
    assert not errors, errors[:3]
