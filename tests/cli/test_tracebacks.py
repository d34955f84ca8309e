"""Inputs that ended in a traceback or in a message naming no file (reliability, round 3): each is
now one `error:` line through `main()` that says which file and what is wrong with it."""

import json
import os
import subprocess
import sys

import torch

from tests.conftest import TINY
from tests.helpers import run_main


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


def test_a_hypothesis_file_with_a_byte_order_mark_is_jsonl_still(tmp_path):
    (tmp_path / "ref.jsonl").write_text('{"id": "u0", "audio": "x.wav", "lang": "en", "text": "a b"}\n')
    (tmp_path / "hyp.jsonl").write_bytes(b'\xef\xbb\xbf{"id": "u0", "lang": "de", "text": "a b"}\n')
    (tmp_path / "hyp.text").write_text("u0\ta b\n")  # Kaldi text with a tab
    from hlora_cli.cli.score import read_hyps

    assert read_hyps(tmp_path / "hyp.jsonl") == {"u0": ("de", "a b")}
    assert read_hyps(tmp_path / "hyp.text") == {"u0": (None, "a b")}


def test_a_crafted_ctranslate2_model_is_one_line(tmp_path):
    import struct

    def string(s: str) -> bytes:
        return struct.pack("<H", len(s) + 1) + s.encode() + b"\0"

    def model(nbytes: int, shape=(1000, 1000), alias: str | None = None) -> bytes:
        body = struct.pack("<I", 6) + string("whisper") + struct.pack("<II", 1, 1) + string("encoder/conv1/weight")
        body += (
            struct.pack("<B", len(shape)) + struct.pack("<" + "I" * len(shape), *shape) + struct.pack("<BI", 0, nbytes)
        )
        body += b"\0" * min(nbytes, 64)
        if alias:
            body += struct.pack("<I", 1) + string("x") + string(alias)
        return body

    src = tmp_path / "ct2"
    src.mkdir()
    (src / "config.json").write_text("{}")
    (src / "tokenizer.json").write_text("{}")
    for name, data in {
        "sizes past the end": model(4_000_000),
        "a shape that does not fit": model(64, shape=(3, 5)),
        "an alias to nothing": model(64, shape=(4, 4), alias="nothing"),
    }.items():
        (src / "model.bin").write_bytes(data)
        code, err = run_main("backbone", "import-ct2", src, tmp_path / f"out_{len(name)}")
        assert code == 2 and len(err.strip().splitlines()) == 1, (name, err)
        assert err.startswith(f"error: {src / 'model.bin'}: "), (name, err)
        assert not (tmp_path / f"out_{len(name)}").exists()


def test_a_garbage_bpe_model_in_a_vocab_is_named(tmp_path):
    from hlora_cli.data.vocab import SPECIALS

    (tmp_path / "vocab.json").write_text(
        json.dumps({"languages": {"en": [*SPECIALS, "a"]}, "shared": [], "bpe": {"en": "bm90IGEgbW9kZWw="}})
    )
    from hlora_cli.data.vocab import Vocab
    from hlora_cli.errors import HloraError

    try:
        Vocab.load(tmp_path / "vocab.json")
        raise AssertionError("loaded")
    except HloraError as e:
        assert str(e).startswith(
            f"{tmp_path / 'vocab.json'}: bpe['en']: a BPE model in the vocabulary is not a sentencepiece model ("
        ), e
