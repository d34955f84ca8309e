"""`hlora decode` streams: results leave chunk by chunk (to stdout without -o, to OUT.partial with
-o), a killed decode leaves every finished result, and `--resume` continues it."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import soundfile as sf

from hlora_cli.errors import HloraError
from hlora_cli.infer.runner import Recognizer
from tests.conftest import waves
from tests.export.conftest import tiny_model_dir
from tests.helpers import run_cli


@pytest.fixture(scope="module")
def data(tmp_path_factory) -> tuple[Path, Path]:
    """(model directory, manifest of 8 utterances of 0.5-1.2 s in two languages)."""
    root = tmp_path_factory.mktemp("stream")
    rows = []
    for i in range(8):
        sec = 0.5 + 0.1 * i
        path = root / f"u{i}.wav"
        sf.write(str(path), waves([sec], seed=i)[0], 16000)
        rows.append(json.dumps({"id": f"u{i}", "audio": str(path), "lang": ["en", "de"][i % 2], "text": "a"}))
    (root / "m.jsonl").write_text("\n".join(rows) + "\n")
    return tiny_model_dir("whisper", root), root / "m.jsonl"


def _decode(model: Path, manifest: Path, *extra, check: bool = True):
    return run_cli("decode", manifest, "--model", model, "--num-workers", "0", *extra, check=check)


def test_without_out_it_prints_id_lang_text_lines_as_the_files_hold(data, tmp_path):
    from typer.testing import CliRunner

    from hlora_cli.cli.main import app

    model, manifest = data
    _decode(model, manifest, "-o", tmp_path / "hyp.jsonl")
    rows = [json.loads(x) for x in (tmp_path / "hyp.jsonl").read_text().splitlines()]
    # as in a terminal (the progress bar live on stderr): stdout holds the results and nothing else
    args = ["decode", str(manifest), "--model", str(model), "--num-workers", "0", "--chunk-seconds", "2"]
    r = CliRunner().invoke(app, args, env={"COLUMNS": "200", "TTY_COMPATIBLE": "1"})
    assert r.exit_code == 0, r.output
    assert sorted(r.stdout.splitlines()) == sorted(f"{h['id']}\t{h['lang']}\t{h['text']}" for h in rows)
    assert " utterances, " in r.stderr and "real-time factor" in r.stderr


def test_a_killed_decode_leaves_its_finished_chunks_and_resume_finishes_it(data, tmp_path, monkeypatch):
    model, manifest = data
    _decode(model, manifest, "-o", tmp_path / "full.jsonl", "--chunk-seconds", "2")
    out = tmp_path / "hyp.jsonl"
    run, calls = Recognizer.run, []

    def dies_on_third_chunk(self, items, on_progress=None):
        calls.append([it.id for it in items])
        if len(calls) == 3:
            raise KeyboardInterrupt  # what a kill looks like from inside
        return run(self, items, on_progress)

    monkeypatch.setattr(Recognizer, "run", dies_on_third_chunk)
    r = _decode(model, manifest, "-o", out, "--chunk-seconds", "2", check=False)
    assert r.returncode != 0 and not out.exists()
    partial = tmp_path / "hyp.jsonl.partial"
    finished = [json.loads(x)["id"] for x in partial.read_text().splitlines()]
    assert sorted(finished) == sorted(calls[0] + calls[1]) and 0 < len(finished) < 8
    with open(partial, "a") as f:  # the kill cut the next line short
        f.write('{"id": "u7", "lang')
    r = _decode(model, manifest, "-o", out, "--chunk-seconds", "2", check=False)
    assert r.returncode == 2 and "continue it with --resume" in r.stderr
    r = _decode(model, manifest, "-o", out, "--mode", "oracle", "--resume", check=False)
    assert r.returncode == 2 and "hyp.jsonl.partial.json: the earlier decode of" in r.stderr
    assert "used mode single, this one oracle" in r.stderr

    def fails(self, items, on_progress=None):
        raise HloraError("a bad first chunk")

    monkeypatch.setattr(Recognizer, "run", fails)
    r = _decode(model, manifest, "-o", tmp_path / "other.jsonl", check=False)
    assert r.returncode == 2 and not (tmp_path / "other.jsonl.partial").exists()  # an error before any result

    calls.clear()
    monkeypatch.setattr(
        Recognizer,
        "run",
        lambda self, items, on_progress=None: calls.append([it.id for it in items]) or run(self, items),
    )
    r = _decode(model, manifest, "-o", out, "--chunk-seconds", "2", "--resume")
    assert sorted(i for c in calls for i in c) == sorted({f"u{i}" for i in range(8)} - set(finished))  # only the rest
    assert f"{len(finished)} utterance(s) already decoded, {8 - len(finished)} to go" in r.stdout
    assert out.read_text() == (tmp_path / "full.jsonl").read_text()  # as one uninterrupted run, sorted
    assert (tmp_path / "hyp.text").read_text() == (tmp_path / "full.text").read_text()
    assert not partial.exists() and json.loads((tmp_path / "hyp.meta.json").read_text())["resumed"] == len(finished)
    assert not (tmp_path / "hyp.jsonl.partial.json").exists()


def test_resume_needs_out_and_a_finished_output_has_nothing_left(data, tmp_path):
    model, manifest = data
    r = _decode(model, manifest, "--resume", check=False)
    assert r.returncode == 2 and "give the same -o" in r.stderr
    _decode(model, manifest, "-o", tmp_path / "hyp.jsonl")
    before = (tmp_path / "hyp.jsonl").read_text()
    r = _decode(model, manifest, "-o", tmp_path / "hyp.jsonl", "--resume")
    assert "8 utterance(s) already decoded, 0 to go" in r.stdout and (tmp_path / "hyp.jsonl").read_text() == before


def test_resume_with_other_inputs_is_refused(data, tmp_path):
    from tests.helpers import run_main

    model, manifest = data
    other = tmp_path / "other.jsonl"
    other.write_text("".join(line + "\n" for line in manifest.read_text().splitlines()[:3]))
    out = tmp_path / "hyp.jsonl"
    _decode(model, manifest, "-o", out)
    before = out.read_bytes()
    code, err = run_main("decode", other, "--model", model, "--num-workers", "0", "-o", out, "--resume")
    assert code == 2 and err.strip() == (
        f"error: {tmp_path / 'hyp.meta.json'}: the earlier decode of {out} used inputs {manifest.resolve()}, "
        f"this one {other.resolve()}: resume with the same settings, or decode into another -o"
    ), err
    assert out.read_bytes() == before
    # a finished output with no recorded inputs (an older hlora): the rows themselves tell
    meta = json.loads((tmp_path / "hyp.meta.json").read_text())
    del meta["inputs"]
    (tmp_path / "hyp.meta.json").write_text(json.dumps(meta))
    code, err = run_main("decode", other, "--model", model, "--num-workers", "0", "-o", out, "--resume")
    assert code == 2 and err.strip() == (
        f"error: {out}: the earlier decode holds 5 utterance(s) these inputs lack (e.g. 'u3'): resume with the same "
        "inputs, or decode into another -o"
    ), err
    assert out.read_bytes() == before
