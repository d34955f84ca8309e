from hlora_cli.model import build_model, save_model
from tests.conftest import tiny_config
from tests.helpers import hlora


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


def _listed(help_text: str) -> list[str]:
    """The command names of a --help screen: table rows that start with a name (not an option, and
    not a help text's continuation line)."""
    return [line[2:].split()[0] for line in help_text.splitlines() if line.startswith("│ ") and line[2] not in " -"]


def test_help_lists_every_command():
    r = hlora("--help")
    assert r.returncode == 0
    commands = ["info", "normalize", "train", "fuse", "distill", "lid", "decode", "score", "ablate", "prepare", "lm"]
    commands += ["backbone", "export"]
    assert _listed(r.stdout) == commands
    r = hlora("export", "--help")
    assert _listed(r.stdout) == ["hf", "peft", "onnx"]
    r = hlora("prepare", "--help")
    assert _listed(r.stdout) == [
        "kaldi", "export-kaldi", "lhotse", "hf", "shards", "to-lhotse", "mlc-slm", "folder", "deeply-ko",
        "magicdata-tts", "split", "cv", "vocab", "synth", "subset",
    ]  # fmt: skip
