"""`hlora export onnx` and `hlora decode --onnx`: onnxruntime decodes as torch does."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.export.conftest import tiny_model_dir
from tests.helpers import run_cli


def _rows(path: Path) -> list[dict]:
    return [json.loads(x) for x in path.read_text().splitlines()]


def _decode(manifest: Path, out: Path, *model: str | Path, mode: str = "single") -> list[dict]:
    extra = ["--lang", "de"] if mode == "oracle" else []
    run_cli("decode", manifest, *model, "--mode", mode, *extra, "--batch-seconds", "2", "--num-workers", "0", "-o", out)
    return _rows(out)


@pytest.fixture(scope="module")
def manifest(tmp_path_factory) -> Path:
    """Six utterances of different lengths in two languages (so batches are padded and mixed)."""
    import soundfile as sf

    from tests.conftest import waves

    root = tmp_path_factory.mktemp("onnx_data")
    rows = []
    for i, (sec, lang) in enumerate(zip([0.7, 1.1, 0.5, 1.4, 0.9, 0.6], ["en", "de"] * 3, strict=True)):
        path = root / f"u{i}.wav"
        sf.write(str(path), waves([sec], seed=i)[0], 16000)
        rows.append(json.dumps({"id": f"u{i}", "audio": str(path), "lang": lang, "text": "a", "duration": sec}))
    (root / "m.jsonl").write_text("\n".join(rows) + "\n")
    return root / "m.jsonl"


@pytest.mark.parametrize(
    ("kind", "model_type"),
    [
        ("whisper", "hlora"),
        ("hubert", "hlora"),  # group-norm frontend: one utterance at a time through encoder.onnx
        ("wav2vec2", "hlora"),
        ("whisper", "shared-lora"),
        ("whisper", "ctc"),
        ("whisper", "mole"),
    ],
)
def test_onnx_decodes_as_torch_in_single_pass_and_oracle(kind, model_type, manifest, tmp_path):
    extra = {"l1": 2} if model_type == "mole" else {}
    model_dir = tiny_model_dir(kind, tmp_path, model_type, **extra)
    out = tmp_path / "onnx"
    r = run_cli("export", "onnx", model_dir, "-o", out)
    routed = model_type in ("hlora", "mole")
    graphs = sorted(p.name for p in out.glob("*.onnx"))
    assert graphs == (
        sorted(["encoder.onnx", "de.onnx", "en.onnx", "fr.onnx", "ja.onnx"]) if routed else ["model.onnx"]
    )
    assert "->" in r.stdout
    for mode in ("single", "oracle"):
        torch_rows = _decode(manifest, tmp_path / f"t_{mode}.jsonl", "--model", model_dir, mode=mode)
        onnx_rows = _decode(manifest, tmp_path / f"o_{mode}.jsonl", "--onnx", out, mode=mode)
        assert [(r["id"], r["lang"], r["text"]) for r in onnx_rows] == [
            (r["id"], r["lang"], r["text"]) for r in torch_rows
        ]
        for a, b in zip(torch_rows, onnx_rows, strict=True):
            assert a["lang_probs"] == pytest.approx(b["lang_probs"], abs=1e-3)
    # oracle took each row's language: a mixed batch ran through two per-language graphs
    assert {r["lang"] for r in _rows(tmp_path / "o_oracle.jsonl")} == {"en", "de"}
    meta = json.loads((tmp_path / "o_single.meta.json").read_text())
    assert meta["onnx"] is True and meta["int8"] is False


def test_int8_export_is_smaller_and_decodes(manifest, tmp_path):
    model_dir = tiny_model_dir("whisper", tmp_path)
    run_cli("export", "onnx", model_dir, "-o", tmp_path / "fp32")
    run_cli("export", "onnx", model_dir, "-o", tmp_path / "int8", "--int8")
    size = {d: sum(p.stat().st_size for p in (tmp_path / d).glob("*.onnx")) for d in ("fp32", "int8")}
    assert sorted(p.name for p in (tmp_path / "int8").glob("*.onnx"))[0] == "de.int8.onnx"
    assert size["int8"] < 0.6 * size["fp32"]
    rows = _decode(manifest, tmp_path / "q.jsonl", "--onnx", tmp_path / "int8")
    assert len(rows) == 6 and json.loads((tmp_path / "q.meta.json").read_text())["int8"] is True
    # int8 weights: the fp32 export's posteriors within a point (measured: 0.05 points), so its
    # language wherever fp32's margin is wider than that (a random tiny model's margins are small)
    fp32 = _decode(manifest, tmp_path / "f.jsonl", "--onnx", tmp_path / "fp32")
    assert [r["id"] for r in rows] == [r["id"] for r in fp32]
    for a, b in zip(fp32, rows, strict=True):
        assert a["lang_probs"] == pytest.approx(b["lang_probs"], abs=0.01)
        second, first = sorted(a["lang_probs"].values())[-2:]
        assert first - second <= 0.02 or a["lang"] == b["lang"]
    # a clip shorter than one encoder frame is skipped, naming its file; the others decode
    import numpy as np
    import soundfile as sf

    sf.write(str(tmp_path / "tiny.wav"), np.zeros(160, dtype=np.float32), 16000)
    with_tiny = tmp_path / "with_tiny.jsonl"
    tiny = {"id": "tiny", "audio": str(tmp_path / "tiny.wav"), "lang": "de", "text": "a"}
    with_tiny.write_text(manifest.read_text() + json.dumps(tiny) + "\n")
    r = run_cli("decode", with_tiny, "--onnx", tmp_path / "int8", "--num-workers", "0", "-o", tmp_path / "t.jsonl",
                check=False)  # fmt: skip
    assert r.returncode == 1 and len(_rows(tmp_path / "t.jsonl")) == 6
    assert "10 ms of audio, shorter than one frame of the encoder" in " ".join(r.stdout.split())


def test_onnx_export_and_decode_errors(manifest, tmp_path):
    lidlora = tiny_model_dir("whisper", tmp_path, "lidlora")
    r = run_cli("export", "onnx", lidlora, "-o", tmp_path / "x", check=False)
    assert r.returncode == 2 and "cannot decode single-pass" in r.stderr and not (tmp_path / "x").exists()
    model_dir = tiny_model_dir("whisper", tmp_path)
    run_cli("export", "onnx", model_dir, "-o", tmp_path / "o")
    r = run_cli(
        "decode", manifest, "--onnx", tmp_path / "o", "--routing", "soft", "-o", tmp_path / "h.jsonl", check=False
    )
    assert r.returncode == 2 and "routing hard: drop --routing" in r.stderr
    assert not (tmp_path / "h.jsonl.partial").exists()  # refused before any work
    r = run_cli("decode", manifest, "--onnx", model_dir, "-o", tmp_path / "h.jsonl", check=False)
    assert r.returncode == 2 and "onnx.json: no such file" in r.stderr
    (tmp_path / "o" / "en.onnx").write_bytes(b"not a graph")
    r = run_cli("decode", manifest, "--onnx", tmp_path / "o", "-o", tmp_path / "h.jsonl", check=False)
    assert r.returncode == 2 and "en.onnx: onnxruntime cannot load it" in r.stderr
    meta = json.loads((tmp_path / "o" / "onnx.json").read_text())
    del meta["frontend"]
    (tmp_path / "o" / "onnx.json").write_text(json.dumps(meta))
    r = run_cli("decode", manifest, "--onnx", tmp_path / "o", "-o", tmp_path / "h.jsonl", check=False)
    assert r.returncode == 2 and "onnx.json: not an export of `hlora export onnx`" in r.stderr
    r = run_cli(
        "decode", manifest, "--onnx", tmp_path / "o", "--model", model_dir, "-o", tmp_path / "h.jsonl", check=False
    )
    assert r.returncode == 2 and "not both" in r.stderr


def test_onnx_student_and_expert_decode_as_torch(manifest, tmp_path):
    import dataclasses

    from hlora_cli.model import build_model, save_model
    from tests.conftest import randomize_adapters, tiny_config

    student = tiny_model_dir("whisper", tmp_path, "student")
    config = dataclasses.replace(tiny_config("whisper", "lidlora"), model_type="expert", languages=["de"])
    model = build_model(config).eval()
    randomize_adapters(model)
    expert = save_model(model, tmp_path / "expert")
    for model_dir in (student, expert):
        out = tmp_path / f"{model_dir.name}_onnx"
        run_cli("export", "onnx", model_dir, "-o", out)
        assert [p.name for p in out.glob("*.onnx")] == ["model.onnx"]
        torch_rows = _decode(manifest, tmp_path / "t.jsonl", "--model", model_dir)
        onnx_rows = _decode(manifest, tmp_path / "o.jsonl", "--onnx", out)
        assert [(r["id"], r["lang"], r["text"]) for r in onnx_rows] == [
            (r["id"], r["lang"], r["text"]) for r in torch_rows
        ]
    assert {r["lang"] for r in onnx_rows} == {"de"}  # the expert's one language, no LID to run
