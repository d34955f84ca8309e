"""recipes/mlc_slm: its synthesised corpus is what `hlora prepare mlc-slm` reads back (texts, times,
languages), the paper's utterance-id lists select rows, and RESULTS.md puts the paper's numbers
beside ours."""

import importlib.util
import json
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from hlora_cli.data.audio import load_audio
from hlora_cli.data.manifest import Utterance, read_manifest, write_manifest
from tests.helpers import run_cli

RECIPE = Path(__file__).resolve().parents[2] / "recipes" / "mlc_slm"


def local(name: str):
    spec = importlib.util.spec_from_file_location(f"mlc_slm_{name}", RECIPE / "local" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


def clips(tmp_path: Path) -> list[Utterance]:
    rng = np.random.default_rng(0)
    utts = []
    for i, (lang, text) in enumerate(
        [("en", "hello there"), ("en", "good day"), ("en", "see you"), ("ja", "こんにちは"), ("ko", "안녕하세요")]
    ):
        path = tmp_path / "clips" / f"{i}.wav"
        path.parent.mkdir(parents=True, exist_ok=True)
        sf.write(str(path), (0.1 * rng.standard_normal(8000 + 1600 * i)).astype(np.float32), 16000, subtype="PCM_16")
        utts.append(Utterance(f"c{i}", str(path), lang, text, duration=(8000 + 1600 * i) / 16000))
    write_manifest(tmp_path / "clips.jsonl", utts)
    return utts


def test_synthesised_layout_reads_back_as_the_clips(tmp_path):
    utts = clips(tmp_path)
    local("synth_layout").layout(tmp_path / "clips.jsonl", tmp_path / "mlc", per_recording=2, seed=0)
    assert sorted(p.relative_to(tmp_path / "mlc").as_posix() for p in (tmp_path / "mlc").rglob("*.txt")) == [
        "English/Indian/0001_001.txt",
        "English/Indian/0002_001.txt",
        "Japanese/0001_001.txt",
        "Korean/0001_001.txt",
    ]
    run_cli("prepare", "mlc-slm", tmp_path / "mlc", "-o", tmp_path / "m.jsonl", "--languages", "en-IN,ja,ko")
    back = read_manifest(tmp_path / "m.jsonl")
    assert [(u.lang, u.text, u.speaker.rsplit("-", 1)[1]) for u in back] == [
        ("en-IN", "hello there", "A"),
        ("en-IN", "good day", "B"),
        ("en-IN", "see you", "A"),
        ("ja", "こんにちは", "A"),
        ("ko", "안녕하세요", "A"),
    ]
    for u, clip in zip(back, utts, strict=True):  # the segment's times cut out the clip's own samples
        cut, orig = load_audio(u.audio, u.start, u.end), load_audio(clip.audio)
        assert abs(len(cut) - len(orig)) <= 16  # times are written in ms: 16 samples
        n = min(len(cut), len(orig)) - 16
        best = min(np.abs(cut[16 + s : n + s] - orig[16:n]).max() for s in range(-16, 17))
        assert best < 1e-4  # the same samples (16-bit rounding), at most 1 ms apart


def test_id_lists_select_the_listed_rows(tmp_path):
    clips(tmp_path)
    (tmp_path / "ids.txt").write_text("c1\nc4 some text after the id\n\nnot-there\n")
    (tmp_path / "more").write_text("c0\n")
    r = run_cli(
        "prepare", "subset", tmp_path / "clips.jsonl", "--ids", tmp_path / "ids.txt", "--ids", tmp_path / "more",
        "-o", tmp_path / "s.jsonl",
    )  # fmt: skip
    assert [u.id for u in read_manifest(tmp_path / "s.jsonl")] == ["c0", "c1", "c4"]
    assert "1 listed id(s) are not in" in r.stdout
    rejected = [json.loads(x) for x in (tmp_path / "s.rejected.jsonl").read_text().splitlines()]
    assert [(x["id"], x["reason"]) for x in rejected] == [("c2", "not in --ids"), ("c3", "not in --ids")]
    # with --languages as well: both apply
    run_cli("prepare", "subset", tmp_path / "clips.jsonl", "--ids", tmp_path / "ids.txt", "--languages", "en",
            "-o", tmp_path / "s2.jsonl")  # fmt: skip
    assert [u.id for u in read_manifest(tmp_path / "s2.jsonl")] == ["c1"]


@pytest.mark.parametrize(
    "content, message",
    [
        ("", "ids.txt: no utterance ids in this list"),
        ("x1\nx2\n", "ids.txt: none of the 2 listed ids is in the manifest"),
    ],
)
def test_id_lists_that_select_nothing_are_errors(tmp_path, content, message):
    clips(tmp_path)
    (tmp_path / "ids.txt").write_text(content)
    r = run_cli("prepare", "subset", tmp_path / "clips.jsonl", "--ids", tmp_path / "ids.txt", "-o",
                tmp_path / "s.jsonl", check=False)  # fmt: skip
    assert r.returncode == 2 and message in r.stderr
    assert not (tmp_path / "s.jsonl").exists()
    r = run_cli("prepare", "subset", tmp_path / "clips.jsonl", "-o", tmp_path / "s.jsonl", check=False)
    assert r.returncode == 2 and "give --languages, --ids, --per-language or a combination" in r.stderr


def test_results_table_puts_the_paper_beside_ours(tmp_path):
    exp = tmp_path / "exp"
    for s, (dev_pooled, mean) in {"dev": (0.25, 0.3), "test": (0.2, 0.22)}.items():
        (exp / f"decode_{s}").mkdir(parents=True)
        system = {"average": {"mer_pooled": dev_pooled, "mer": mean}, "lid_accuracy": 0.95, "rtf": 0.01}
        (exp / f"decode_{s}" / "scores.json").write_text(json.dumps({"s6_hlora": system}))
    runs = [{"k": 9, "dev": {"mer": {"en-IN": 0.3, "ja": 0.2}, "average": 0.25},
             "test": {"mer": {"en-IN": 0.28, "ja": 0.1}, "average": 0.2}}]  # fmt: skip
    (exp / "ablate").mkdir()
    (exp / "ablate" / "ablation.json").write_text(json.dumps(runs))
    results = local("results")
    rows = {line.split(" | ")[0].strip("| "): line for line in results.system_table(exp, 9)}
    assert rows["S6"] == (
        "| S6 | mHuBERT-CTC-HLoRA k=9 | – | × | single | 25.0 | 20.0 | 30.0 / 22.0 | 95.0 | 0.010 | 102 M, 26.3, 24.7 |"
    )
    assert "not run: needs the MSR-86K subset" in rows["S1"] and "| S2 |" in rows["S2"] and "not run" in rows["S2"]
    ablation = results.ablation_table(exp, [1, 9])
    assert ablation[2] == "| en-IN | – (40.5 / 48.1) | 30.0 / 28.0 (29.2 / 25.2) |"
    assert ablation[-1] == "| **Avg** (pooled) | – (34.8 / 36.6) | 25.0 / 20.0 (26.3 / 24.7) |"
