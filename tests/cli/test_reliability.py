"""Hostile input, command by command: one-line errors before any work, and nothing written that
the user did not name as output (issue: 340 hostile inputs)."""

import json
import os
import subprocess
import sys

import pytest
import torch

from hlora_cli.errors import HloraError
from hlora_cli.files import atomic_write, json_text
from hlora_cli.model import build_model, save_model
from tests.conftest import tiny_config
from tests.data.helpers import write_audio
from tests.helpers import run_cli


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    """A tiny saved model and a two-utterance manifest with references."""
    root = tmp_path_factory.mktemp("rel")
    model = build_model(tiny_config("whisper", k=2))
    save_model(model, root / "m")
    rows = []
    for i, lang in enumerate(("en", "de")):
        wav = write_audio(root / f"u{i}.wav", 0.6)
        rows.append({"id": f"u{i}", "audio": str(wav), "lang": lang, "text": "a b"})
    (root / "test.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    return root


@pytest.mark.parametrize(
    "args, words",
    [
        (["train", "--modle", "x"], "No such option: --modle"),
        (["decode"], "Missing argument"),
        (["trian"], "No such command 'trian'"),
        (["train", "--lr", "abc", "--out", "x"], "Invalid value for '--lr'"),
        (["train", "--k", "two", "--out", "x"], "Invalid value for '--k'"),
    ],
)
def test_usage_errors_are_one_line_with_exit_2_from_the_real_entry_point(args, words):
    r = subprocess.run([sys.executable, "-m", "hlora_cli", *args], capture_output=True, text=True)
    assert r.returncode == 2
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and words in lines[0], r.stderr
    assert "Traceback" not in r.stderr


def test_an_output_that_is_an_input_is_refused_and_the_input_kept(setup):
    manifest = setup / "test.jsonl"
    before = manifest.read_text()
    for args in (
        ["decode", manifest, "--model", setup / "m", "-o", manifest],
        ["lid", manifest, "--model", setup / "m", "-o", manifest],
        ["score", manifest, manifest, "--json", manifest],
        ["normalize", manifest, "-o", manifest],
    ):
        r = run_cli(*args, check=False)
        assert r.returncode == 2 and "would overwrite the input" in r.stderr, (args, r.stderr)
    assert manifest.read_text() == before


def test_decode_output_named_like_the_kaldi_text_keeps_both(setup, tmp_path):
    out = tmp_path / "h.text"
    r = run_cli("decode", setup / "test.jsonl", "--model", setup / "m", "-o", out)
    assert f"-> {out}, {tmp_path / 'h.kaldi.text'}" in r.stdout
    assert [json.loads(x)["id"] for x in out.read_text().splitlines()] == ["u0", "u1"]
    assert (tmp_path / "h.kaldi.text").read_text().startswith("u0 ")


def test_outputs_and_models_are_checked_before_any_work(setup, tmp_path):
    (tmp_path / "afile").write_text("x")
    cases = [
        (["decode", setup / "test.jsonl", "--model", setup / "m", "-o", tmp_path], "is a directory"),
        (["decode", setup / "test.jsonl", "--model", tmp_path / "afile", "-o", tmp_path / "o.jsonl"], "not a model"),
        (
            ["decode", setup / "test.jsonl", "--model", setup / "m", "--whisper", "w", "-o", tmp_path / "o"],
            "on its own",
        ),
        (["score", setup / "test.jsonl", setup / "test.jsonl", "--json", tmp_path], "is a directory"),
        (["info", tmp_path / "afile"], "not a model directory"),
        (["lm", "build", setup / "test.jsonl", "-o", tmp_path / "afile"], "is a file"),
        (
            [
                "train",
                "--out",
                tmp_path / "afile",
                "--train",
                "x",
                "--vocab",
                "v",
                "--backbone",
                "b",
                "--max-steps",
                "1",
                "--k",
                "1",
            ],
            "is a file",
        ),
    ]
    for args, words in cases:
        r = run_cli(*args, check=False)
        assert r.returncode == 2 and words in r.stderr, (args, r.stderr)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["afile"]  # nothing written


@pytest.mark.parametrize(
    "flag, value, words",
    [
        ("--lr", "nan", "--lr nan: must be a finite number in (0, inf]"),
        ("--lr", "-1", "--lr -1.0: must be a finite number in (0, inf]"),
        ("--lora-dropout", "1.5", "--lora-dropout 1.5: must be a finite number in [0, 1)"),
        ("--max-steps", "0", "--max-steps 0: must be a finite number in [1, inf]"),
        ("--num-workers", "-2", "--num-workers -2: must be a finite number in [0, inf]"),
    ],
)
def test_training_numbers_are_checked_before_any_work(tmp_path, flag, value, words):
    args = [
        "train",
        "--out",
        tmp_path / "run",
        "--train",
        "t.jsonl",
        "--vocab",
        "v.json",
        "--backbone",
        "b",
        "--k",
        "1",
    ]
    r = run_cli(*args, "--max-steps", "3", flag, value, check=False)
    assert r.returncode == 2 and r.stderr == f"error: {words}", r.stderr
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize(
    "extra, words",
    [
        (["--beam-width", "0"], "--beam-width 0: must be a finite number in [1, inf]"),
        (["--num-workers", "-1"], "--num-workers -1: must be a finite number in [0, inf]"),
        (["--window", "2", "--overlap", "2"], "--window 2.0 must be longer than --overlap 2.0"),
        (["--lm", "fr=nowhere.bin"], "nowhere.bin: not found: no language model file (--lm fr=nowhere.bin)"),
    ],
)
def test_decode_values_are_checked_before_any_work(setup, tmp_path, extra, words):
    r = run_cli("decode", setup / "test.jsonl", "--model", setup / "m", "-o", tmp_path / "o.jsonl", *extra, check=False)
    assert r.returncode == 2 and r.stderr == f"error: {words}", r.stderr
    assert not list(tmp_path.iterdir())


def test_every_lm_is_checked_before_decoding(setup, tmp_path):
    (tmp_path / "bad.arpa").write_text("this is not an ARPA file\n")
    out = tmp_path / "o.jsonl"
    cases = (
        ("xx", "'xx' is not a language code"),
        ("ko", "--lm for ko: the model has no head for it"),
        ("de", "not a readable KenLM model"),
    )
    for lang, words in cases:
        lm = f"{lang}={tmp_path / 'bad.arpa'}"
        r = run_cli("decode", setup / "test.jsonl", "--model", setup / "m", "--lm", lm, "-o", out, check=False)
        assert r.returncode == 2 and words in r.stderr, r.stderr
    assert not out.exists()


def test_strict_json_never_writes_nan():
    text = json_text({"lang_probs": {"de": float("nan"), "en": float("inf")}, "x": [1.0, float("-inf")]})
    assert json.loads(text) == {"lang_probs": {"de": None, "en": None}, "x": [1.0, None]}


def test_score_rejects_null_or_missing_text_and_duplicates_and_can_score_missing_as_empty(setup, tmp_path):
    ref = setup / "test.jsonl"
    cases = [
        ('{"id": "u0", "lang": "en", "text": null}\n', ":1: the text of u0 is null, not a string"),
        ('{"id": "u0", "lang": "en"}\n', ":1: expected a JSON object with id and text"),
        ('{"id": "u0", "text": "a"}\n{"id": "u0", "text": "b"}\n', ":2: duplicate hypothesis id u0"),
    ]
    for content, words in cases:
        (tmp_path / "h.jsonl").write_text(content)
        r = run_cli("score", ref, tmp_path / "h.jsonl", check=False)
        assert r.returncode == 2 and words in r.stderr, r.stderr
    (tmp_path / "h.jsonl").write_text('{"id": "u0", "lang": "en", "text": "a b"}\n')
    r = run_cli("score", ref, tmp_path / "h.jsonl", check=False)
    assert r.returncode == 2 and "1 reference id(s) without hypothesis (u1...)" in r.stderr
    r = run_cli("score", ref, tmp_path / "h.jsonl", "--missing-as-empty", "--json", tmp_path / "s.json")
    assert "1 reference(s) without a hypothesis scored as empty (all deletions)" in r.stdout
    scores = json.loads((tmp_path / "s.json").read_text())
    assert scores["languages"]["de"]["mer"] == 1.0 and scores["languages"]["en"]["mer"] == 0.0
    assert scores["lid_accuracy"] == 0.5 and scores["missing_scored_as_empty"] == 1


@pytest.mark.parametrize(
    "extra, words",
    [
        (["--order", "1"], "--order 1: choose 2..10"),
        (["--order", "50"], "--order 50: choose 2..10"),
        (["--prune", "a,b"], "--prune a,b: expected comma-separated integers"),
        (["--languages", "fr"], "no text in language(s) fr"),
    ],
)
def test_lm_build_checks_its_values_first(setup, tmp_path, extra, words):
    r = run_cli("lm", "build", setup / "test.jsonl", "-o", tmp_path / "lm", *extra, check=False)
    assert r.returncode == 2 and words in r.stderr, r.stderr
    assert not (tmp_path / "lm").exists()


def test_a_checkpoint_carrying_code_is_refused(tmp_path):
    from hlora_cli.train.state import CHECKPOINT, load_checkpoint

    class Evil:
        def __reduce__(self):
            return (os.system, ("touch " + str(tmp_path / "pwned"),))

    torch.save({"step": 1, "x": Evil()}, tmp_path / CHECKPOINT)
    with pytest.raises(HloraError, match=r"refused: the checkpoint holds code \(posix.system\)"):
        load_checkpoint(tmp_path)
    assert not (tmp_path / "pwned").exists()
    (tmp_path / CHECKPOINT).write_bytes(b"")
    with pytest.raises(HloraError, match="not a readable checkpoint"):
        load_checkpoint(tmp_path)


def test_corrupt_model_files_are_one_line_errors(setup, tmp_path):
    import shutil

    for name, content, words in [
        ("adapters.safetensors", b"\x00" * 10, "not a readable safetensors file"),
        ("config.json", b"{not json", "not a valid hlora model config"),
    ]:
        shutil.copytree(setup / "m", tmp_path / name)
        (tmp_path / name / name).write_bytes(content)
        r = run_cli("info", tmp_path / name, check=False)
        assert r.returncode == 2 and f"{tmp_path / name / name}: {words}" in r.stderr, r.stderr
    config = json.loads((setup / "m" / "config.json").read_text())
    config["backbone"] = {"kind": "whisper", "source": str(tmp_path / "gone")}
    shutil.copytree(setup / "m", tmp_path / "moved")
    (tmp_path / "moved" / "config.json").write_text(json.dumps(config))
    r = run_cli("info", tmp_path / "moved", check=False)
    assert r.returncode == 2 and f"{tmp_path / 'gone'}: backbone cannot be loaded" in r.stderr, r.stderr


def test_import_ct2_never_deletes_what_is_in_the_target(tmp_path):
    target = tmp_path / "hf"
    target.mkdir()
    (target / "notes.txt").write_text("mine")
    r = run_cli("backbone", "import-ct2", tmp_path / "no-ct2", target, check=False)
    assert r.returncode == 2 and "not empty; pass --overwrite" in r.stderr
    assert (target / "notes.txt").read_text() == "mine"
    (tmp_path / "afile").write_text("x")
    r = run_cli("backbone", "import-ct2", tmp_path / "no-ct2", tmp_path / "afile", check=False)
    assert r.returncode == 2 and "is a file" in r.stderr and not list(tmp_path.glob(".afile*"))


def test_decoding_nothing_says_so(setup, tmp_path):
    (tmp_path / "bad.wav").write_bytes(b"RIFF....not audio")
    r = run_cli("decode", tmp_path / "bad.wav", "--model", setup / "m", "-o", tmp_path / "o.jsonl", check=False)
    assert r.returncode == 1 and "nothing was decoded (1 input(s) skipped)" in r.stdout
    assert "real-time factor" not in r.stdout


def test_lid_plot_without_references_is_refused_before_work(setup, tmp_path):
    wav = write_audio(tmp_path / "x.wav", 0.5)
    r = run_cli(
        "lid", wav, "--model", setup / "m", "-o", tmp_path / "l.jsonl", "--plot", tmp_path / "p.png", check=False
    )
    assert r.returncode == 2 and "carry no reference language" in r.stderr
    assert not (tmp_path / "l.jsonl").exists()


def test_outputs_respect_the_umask(tmp_path):
    old = os.umask(0o022)
    try:
        atomic_write(tmp_path / "f.txt", lambda p: p.write_text("x"))
    finally:
        os.umask(old)
    assert (tmp_path / "f.txt").stat().st_mode & 0o777 == 0o644


def test_a_segment_past_the_end_of_its_file_is_named_with_the_segments_times(setup, tmp_path):
    row = {"id": "late", "audio": str(setup / "u0.wav"), "lang": "en", "text": "a", "start": 0.2, "end": 5.0}
    (tmp_path / "m.jsonl").write_text(json.dumps(row) + "\n")
    r = run_cli("decode", tmp_path / "m.jsonl", "--model", setup / "m", "-o", tmp_path / "o.jsonl", check=False)
    assert r.returncode == 1
    assert f"skipped late: {setup / 'u0.wav'}: the segment 0.20-5.00 s ends past the end of the file (0.60 s)" in (
        r.stdout.replace("\n", " ")
    )
