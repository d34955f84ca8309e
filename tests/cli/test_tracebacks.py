"""Inputs that ended in a traceback or in a message naming no file (reliability, round 3): each is
now one `error:` line through `main()` that says which file and what is wrong with it."""

import json
import os
import subprocess
import sys

import torch

from tests.cli.inprocess import run_main
from tests.conftest import TINY


def tiny_whisper_dir(path):
    from transformers import WhisperConfig, WhisperModel

    WhisperModel(WhisperConfig(**TINY["whisper"])).save_pretrained(path)
    return path


class Evil:
    def __reduce__(self):
        return (os.system, ("echo ran > ran.txt",))


def test_a_pickled_backbone_is_refused_and_not_run(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    backbone = tiny_whisper_dir(tmp_path / "bb")
    (backbone / "model.safetensors").unlink()
    torch.save({"x": Evil()}, backbone / "pytorch_model.bin")
    from hlora_cli.errors import HloraError
    from hlora_cli.model.backbone import load_backbone
    from hlora_cli.model.config import BackboneRef

    try:
        load_backbone(BackboneRef("whisper", str(backbone)))
        raise AssertionError("loaded")
    except HloraError as e:
        assert str(e) == (
            f"{backbone}: its pytorch_model.bin holds pickled objects beyond tensors: refused, nothing in it was "
            "run; give the model as model.safetensors"
        )
    assert not (tmp_path / "ran.txt").exists()


def test_a_backbone_of_another_kind_is_named(tmp_path):
    from hlora_cli.errors import HloraError
    from hlora_cli.model.backbone import load_backbone
    from hlora_cli.model.config import BackboneRef

    backbone = tiny_whisper_dir(tmp_path / "bb")
    try:
        load_backbone(BackboneRef("hubert", str(backbone)))
        raise AssertionError("loaded")
    except HloraError as e:
        assert str(e) == f"{backbone}: is a whisper model, and this model was built on a hubert backbone"


def test_a_truncated_whisper_is_one_line(tmp_path, whisper_base):
    bare = tmp_path / "w"
    bare.mkdir()
    for name in os.listdir(whisper_base):
        if name != "model.safetensors":
            (bare / name).write_bytes((whisper_base / name).read_bytes())
    with open(whisper_base / "model.safetensors", "rb") as f:
        (bare / "model.safetensors").write_bytes(f.read(1 << 20))
    (tmp_path / "t.jsonl").write_text('{"id": "u0", "audio": "x.wav", "lang": "en", "text": "a"}\n')
    code, err = run_main("decode", tmp_path / "t.jsonl", "--whisper", bare, "-o", tmp_path / "o.jsonl")
    lines = err.strip().splitlines()
    assert code == 2 and len(lines) == 1, err
    assert lines[0].startswith(f"error: {bare}: ") and "Traceback" not in err


def test_score_with_a_corrupt_meta_file(tmp_path):
    (tmp_path / "ref.jsonl").write_text('{"id": "u0", "audio": "x.wav", "lang": "en", "text": "a b"}\n')
    (tmp_path / "hyp.jsonl").write_text('{"id": "u0", "lang": "en", "text": "a b"}\n')
    (tmp_path / "hyp.meta.json").write_text('{"rtf": 0.1')
    code, err = run_main("score", tmp_path / "ref.jsonl", tmp_path / "hyp.jsonl", "--systems", "x")
    assert code == 2, err
    assert err.strip().startswith(f"error: {tmp_path / 'hyp.meta.json'}: not a decode's meta file (not JSON: ")
    (tmp_path / "hyp.meta.json").write_text(json.dumps({"rtf": "fast"}))
    code, err = run_main("score", tmp_path / "ref.jsonl", tmp_path / "hyp.jsonl", "--systems", "x")
    assert code == 0, err


def test_a_non_utf8_terminal_gets_escapes_not_a_traceback():
    r = subprocess.run(
        [sys.executable, "-m", "hlora_cli", "normalize", "안녕하세요", "--lang", "ko"],
        capture_output=True,
        env={**os.environ, "PYTHONIOENCODING": "ascii"},
    )
    assert r.returncode == 0, r.stderr.decode()
    assert r.stdout.decode("ascii").strip() == "\\uc548 \\ub155 \\ud558 \\uc138 \\uc694"
