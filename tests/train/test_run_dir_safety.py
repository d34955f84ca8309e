"""A run directory is replaced only after every check, never holds or lies in an input, is never a
user's folder, and takes one training at a time (issue: reliability, round 3: data loss). Each case
goes through `main()` and leaves every file it was not asked to write byte-identical."""

import shutil

import pytest

from tests.helpers import run_main, snapshot
from tests.train.conftest import make_corpus, train_args


@pytest.fixture(scope="module")
def trained(tiny_backbone, tmp_path_factory):
    """A corpus, a finished run (RUN) and two experts."""
    root = tmp_path_factory.mktemp("safety")
    manifest, vocab = make_corpus(root / "data")
    steps = ("--max-steps", "2", "--save-every", "2")
    assert run_main(*train_args(tiny_backbone, manifest, vocab, root / "run", *steps))[0] == 0
    for lang in ("en", "de"):
        expert = train_args(tiny_backbone, manifest, vocab, root / f"expert_{lang}", *steps, "--languages", lang)
        assert run_main(*[a if a != "hlora" else "expert" for a in expert])[0] == 0
    return root, manifest, vocab


def args(tiny_backbone, trained, *extra):
    root, manifest, vocab = trained
    return train_args(tiny_backbone, manifest, vocab, root / "run", "--max-steps", "2", *extra)


@pytest.mark.parametrize(
    "change, message",
    [
        (lambda a, r: [*a, "--languages", "fr"], "{vocab}: no token inventory for language(s) fr"),
        (lambda a, r: [x if x != str(r / "data" / "train.jsonl") else str(r / "none.jsonl") for x in a], "none.jsonl"),
        (lambda a, r: [*a, "--backbone", str(r / "no_backbone")], "no_backbone"),
        (lambda a, r: [*a, "--vocab", str(r / "data" / "train.jsonl")], "train.jsonl"),
    ],
    ids=["language-not-in-vocab", "missing-train", "bad-backbone", "bad-vocab"],
)
def test_overwrite_keeps_the_old_run_when_a_check_fails(tiny_backbone, trained, change, message):
    root, _, vocab = trained
    before = snapshot(root)
    code, err = run_main(*change(args(tiny_backbone, trained, "--overwrite"), root))
    assert code == 2 and err.startswith("error: ") and len(err.strip().splitlines()) == 1, err
    assert message.format(vocab=vocab) in err
    assert snapshot(root) == before  # best/, last/, checkpoint.pt, metrics.jsonl, train.yaml all kept


def test_overwrite_replaces_the_run_once_the_checks_pass(tiny_backbone, trained, tmp_path):
    root, manifest, vocab = trained
    run = tmp_path / "run"
    shutil.copytree(root / "run", run)
    (run / "notes.txt").write_text("mine")  # a file of the user's inside a run: kept
    old = (run / "metrics.jsonl").read_text()
    code, err = run_main(*train_args(tiny_backbone, manifest, vocab, run, "--max-steps", "3", "--overwrite"))
    assert code == 0, err
    assert (run / "metrics.jsonl").read_text() != old and (run / "notes.txt").read_text() == "mine"


def test_a_folder_that_holds_no_run_is_refused_unless_empty(tiny_backbone, trained, tmp_path):
    _, manifest, vocab = trained
    user = tmp_path / "mine"
    (user / "best").mkdir(parents=True)
    (user / "metrics.jsonl").write_text("my numbers\n")
    (user / "best" / "model.bin").write_text("my model")
    (user / "best.tmp").mkdir()
    before = snapshot(user)
    for extra in ((), ("--overwrite",)):
        code, err = run_main(*train_args(tiny_backbone, manifest, vocab, user, "--max-steps", "2", *extra))
        assert code == 2 and err.strip() == (
            f"error: {user}: holds no hlora run but other files (best, best.tmp, metrics.jsonl); give a new or "
            "empty directory for the run"
        ), err
        assert snapshot(user) == before
    empty = tmp_path / "empty"
    empty.mkdir()
    assert run_main(*train_args(tiny_backbone, manifest, vocab, empty, "--max-steps", "1"))[0] == 0


def test_fuse_into_an_experts_run_is_refused(trained):
    root, manifest, _ = trained
    before = snapshot(root)
    expert, other = root / "expert_en", root / "expert_de" / "best"
    code, err = run_main(
        "fuse",
        expert / "best",
        other,
        "--l1",
        "1",
        "--train",
        manifest,
        "--max-steps",
        "1",
        "--out",
        expert,
        "--overwrite",
    )
    assert code == 2, err
    assert err.strip() == (
        f"error: {expert}: the run directory would replace the input {expert / 'best'}, which it holds; "
        "choose another path"
    )
    code, err = run_main(
        "distill", expert / "best", other, "--train", manifest, "--max-steps", "1", "--out", expert / "best" / "s"
    )
    assert code == 2 and err.strip() == (
        f"error: {expert / 'best' / 's'}: the run directory would be written inside the input {expert / 'best'}; "
        "choose a path outside it"
    ), err
    assert snapshot(root) == before


def test_one_training_at_a_time(tiny_backbone, trained, tmp_path):
    import subprocess
    import sys

    _, manifest, vocab = trained
    run = tmp_path / "run"
    run.mkdir()
    holder = subprocess.Popen(  # another training, as far as the lock can tell
        [sys.executable, "-c", "import sys, time; from pathlib import Path; from hlora_cli.train.state import "
         "lock_run_dir; h = lock_run_dir(Path(sys.argv[1])); print('locked', flush=True); time.sleep(60)", str(run)],
        stdout=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        assert holder.stdout.readline().strip() == "locked"
        code, err = run_main(*train_args(tiny_backbone, manifest, vocab, run, "--max-steps", "1"))
    finally:
        holder.kill()
        holder.wait()
    assert code == 2 and err.strip() == (
        f"error: {run}: another training is writing this run (pid {holder.pid}); wait for it to end or give "
        "another --out"
    )
    assert not (run / "metrics.jsonl").exists()
    assert run_main(*train_args(tiny_backbone, manifest, vocab, run, "--max-steps", "1"))[0] == 0  # the holder died
