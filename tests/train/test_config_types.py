"""A YAML config is checked as the CLI checks its flags (reliability, round 3): a setting of the wrong
type is one error line naming the file and the setting, never a silent 1-step or 3-step run; broken
YAML is one line too."""

import pytest

from tests.helpers import run_main


@pytest.mark.parametrize(
    "yaml_text, message",
    [
        ("max_steps: true\n", "setting max_steps must be a number, got True"),
        ("max_steps: 2.7\n", "setting max_steps must be a whole number, got 2.7"),
        ("k: true\n", "setting k must be a number, got True"),
        ("deterministic: 'no'\n", "setting deterministic must be true or false, got 'no'"),
        ("languages: 5\n", "setting languages must be a list of strings (or one comma-separated string), got 5"),
        ("train: [a]\n", "setting train must be a string, got ['a']"),
        ("lr: abc\n", "setting lr must be a number, got 'abc'"),
        ("lr:\n", "setting lr needs a value"),
    ],
)
def test_wrong_types_are_one_line(tmp_path, yaml_text, message):
    (tmp_path / "c.yaml").write_text(yaml_text)
    code, err = run_main("train", "--config", tmp_path / "c.yaml", "--out", tmp_path / "run")
    assert code == 2 and err.strip() == f"error: {tmp_path / 'c.yaml'}: {message}", err
    assert not (tmp_path / "run").exists()


def test_values_that_mean_what_they_say_are_taken(tmp_path):
    from hlora_cli.train.config import load_config

    (tmp_path / "c.yaml").write_text("max_steps: 3.0\nlr: 1e-3\nlanguages: en, de\nbf16: false\nlora_alpha: 16\n")
    cfg = load_config(tmp_path / "c.yaml", {})
    assert (cfg.max_steps, cfg.lr, cfg.languages, cfg.bf16, cfg.lora_alpha) == (3, 1e-3, ["en", "de"], False, 16.0)
    assert isinstance(cfg.max_steps, int) and isinstance(cfg.lora_alpha, float)


def test_seed_out_of_range_broken_yaml_and_bytes(tmp_path):
    (tmp_path / "c.yaml").write_text(
        "seed: 99999999999999999999\ntrain: t.jsonl\nvocab: v.json\nbackbone: b\nk: 3\nmax_steps: 2\n"
    )
    code, err = run_main("train", "--config", tmp_path / "c.yaml", "--out", tmp_path / "run")
    assert (
        code == 2 and err.strip() == "error: --seed 99999999999999999999: must be a finite number in [0, 4.29497e+09]"
    ), err
    (tmp_path / "c.yaml").write_text("lr: 1e-3\n  k: [1\n")
    code, err = run_main("train", "--config", tmp_path / "c.yaml", "--out", tmp_path / "run")
    lines = err.strip().splitlines()
    assert code == 2 and len(lines) == 1 and lines[0].startswith(f"error: {tmp_path / 'c.yaml'}:2:"), err
    assert "not valid YAML" in lines[0]
    (tmp_path / "c.yaml").write_bytes(b"lr: 1e-3\n# caf\xe9\n")
    code, err = run_main("train", "--config", tmp_path / "c.yaml", "--out", tmp_path / "run")
    assert code == 2 and err.strip() == f"error: {tmp_path / 'c.yaml'}: not UTF-8 text (byte 0xe9 at offset 14)", err


def test_resume_with_nothing_saved(tmp_path):
    (tmp_path / "run").mkdir()
    code, err = run_main("train", "--out", tmp_path / "run", "--resume")
    assert (
        code == 2
        and err.strip() == f"error: {tmp_path / 'run'}: nothing to resume (no run was saved there: no train.yaml)"
    )
