import os
import subprocess
import sys

from hlora_cli.model import build_model, save_model
from tests.conftest import tiny_config


def hlora(*args):
    return subprocess.run(
        [sys.executable, "-m", "hlora_cli.cli.main", *args],
        capture_output=True,
        text=True,
        env={**os.environ, "COLUMNS": "200"},
    )


def test_info_reports_the_model(tmp_path):
    model = build_model(tiny_config("whisper", k=3))
    save_model(model, tmp_path / "m")
    r = hlora("info", str(tmp_path / "m"))
    assert r.returncode == 0, r.stderr
    trainable, frozen = model.parameter_counts()
    assert "hlora" in r.stdout and "en, de, fr, ja" in r.stdout
    assert "layers 1-3 shared LoRA, LID after layer 3, layer 4 per language" in r.stdout
    assert "after layer 3 (mean-pooled MLP)" in r.stdout and "adapters.safetensors" in r.stdout
    assert f"{trainable:,}" in r.stdout and f"{frozen:,}" in r.stdout


def test_errors_are_one_line_without_traceback(tmp_path):
    r = hlora("info", str(tmp_path))
    assert r.returncode == 2
    assert r.stderr.strip().splitlines() == [
        f"error: {tmp_path}/config.json: no such file; is {tmp_path} a model directory?"
    ]


def test_help_lists_commands():
    r = hlora("--help")
    assert r.returncode == 0 and "info" in r.stdout
