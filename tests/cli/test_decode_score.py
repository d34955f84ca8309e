import json
import time

import pytest

from tests.helpers import hlora


@pytest.mark.slow
def test_whisper_zero_shot_decode_then_score_on_real_clips(whisper_base, real_manifest, tmp_path):
    r = hlora("decode", str(real_manifest), "--whisper", str(whisper_base), "-o", str(tmp_path / "w.jsonl"))
    assert r.returncode == 0, r.stderr[-2000:]
    assert "real-time factor" in r.stdout and (tmp_path / "w.text").exists()
    r = hlora(
        "score",
        str(real_manifest),
        str(tmp_path / "w.jsonl"),
        "--json",
        str(tmp_path / "s.json"),
        "--plot",
        str(tmp_path / "lid.png"),
    )
    assert r.returncode == 0, r.stderr[-2000:]
    s = json.loads((tmp_path / "s.json").read_text())
    assert s["lid_accuracy"] == 1.0 and sum(v["n"] for v in s["languages"].values()) == 20
    assert s["average"]["mer"] <= 0.30, s["average"]
    assert (tmp_path / "lid.png").read_bytes()[:4] == b"\x89PNG"


@pytest.mark.slow
def test_decode_modes_lid_and_score_cli(espeak_run, tmp_path):
    run, tts = espeak_run
    manifest = tts / "manifest.jsonl"
    outs = {}
    for mode in ("single", "oracle"):
        r = hlora(
            "decode", str(manifest), "--model", str(run / "best"), "--mode", mode, "-o", str(tmp_path / f"{mode}.jsonl")
        )
        assert r.returncode == 0, r.stderr[-2000:]
        outs[mode] = [json.loads(x) for x in (tmp_path / f"{mode}.jsonl").read_text().splitlines()]
    assert [o["text"] for o in outs["single"]] == [o["text"] for o in outs["oracle"]]  # LID is right here
    assert all(o["words"] and o["words"][0]["start"] <= o["words"][-1]["end"] for o in outs["single"])
    r = hlora(
        "score",
        str(manifest),
        str(tmp_path / "single.jsonl"),
        str(manifest),
        str(tmp_path / "oracle.jsonl"),
        "--markdown",
        "--json",
        str(tmp_path / "s.json"),
    )
    assert r.returncode == 0 and r.stdout.startswith("| language | dev n | dev WER")
    s = json.loads((tmp_path / "s.json").read_text())
    assert s["dev"]["lid_accuracy"] == 1.0 and s["dev"]["average"]["cer"] < 0.10
    r = hlora("lid", str(manifest), "--model", str(run / "best"), "-o", str(tmp_path / "lid.jsonl"))
    assert r.returncode == 0 and "LID accuracy 32/32 = 100.0%" in r.stdout
    assert {json.loads(x)["lang"] for x in (tmp_path / "lid.jsonl").read_text().splitlines()} == {"en", "de"}


def test_decode_skips_unreadable_files_with_nonzero_exit(tmp_path):
    import soundfile as sf

    from hlora_cli.model import build_model, save_model
    from tests.conftest import tiny_config, waves

    save_model(build_model(tiny_config("whisper")), tmp_path / "m")
    sf.write(str(tmp_path / "ok.wav"), waves([1.0])[0], 16000)
    (tmp_path / "bad.wav").write_bytes(b"garbage")
    started = time.perf_counter()
    r = hlora(
        "decode",
        str(tmp_path / "ok.wav"),
        str(tmp_path / "bad.wav"),
        "--model",
        str(tmp_path / "m"),
        "-o",
        str(tmp_path / "out.jsonl"),
    )
    elapsed = time.perf_counter() - started
    assert r.returncode == 1
    assert "skipped bad:" in r.stdout and "bad.wav: cannot read audio" in r.stdout
    assert [json.loads(x)["id"] for x in (tmp_path / "out.jsonl").read_text().splitlines()] == ["ok"]
    assert (tmp_path / "out.text").read_text().startswith("ok")
    meta = json.loads((tmp_path / "out.meta.json").read_text())
    assert (meta["utterances"], meta["skipped"], meta["mode"]) == (1, 1, "single")
    # RTF = decoding wall time (within the command's own run time) over the 1 s of audio decoded
    assert meta["audio_seconds"] == 1.0 and 0 < meta["wall_seconds"] < elapsed
    assert meta["rtf"] == pytest.approx(meta["wall_seconds"] / meta["audio_seconds"], abs=6e-4)  # ms rounding


def test_score_mismatched_ids_is_one_line(tmp_path):
    from hlora_cli.data.manifest import Utterance, write_manifest

    write_manifest(tmp_path / "ref.jsonl", [Utterance(f"r{i}", f"r{i}.wav", "en", "one two") for i in range(3)])
    (tmp_path / "hyp.jsonl").write_text(json.dumps({"id": "nope", "lang": "en", "text": "x"}) + "\n")
    r = hlora("score", str(tmp_path / "ref.jsonl"), str(tmp_path / "hyp.jsonl"))
    assert r.returncode == 2 and len(r.stderr.strip().splitlines()) == 1
    assert "ids do not match: 3 reference id(s) without hypothesis" in r.stderr


def test_score_systems_as_rows_with_rtf(tmp_path):
    from hlora_cli.data.manifest import Utterance, write_manifest

    write_manifest(
        tmp_path / "ref.jsonl",
        [Utterance("a", "a.wav", "en", "one two three"), Utterance("b", "b.wav", "ja", "今日は")],
    )
    rows = {
        "good": [("a", "en", "one two three"), ("b", "ja", "今日は")],
        "bad": [("a", "ja", "one two"), ("b", "ja", "明日は")],
    }
    for name, hyps in rows.items():
        (tmp_path / f"{name}.jsonl").write_text(
            "".join(json.dumps({"id": i, "lang": lang, "text": t}) + "\n" for i, lang, t in hyps)
        )
    (tmp_path / "good.meta.json").write_text(json.dumps({"rtf": 0.0123}))
    r = hlora(
        "score",
        str(tmp_path / "ref.jsonl"),
        str(tmp_path / "good.jsonl"),
        str(tmp_path / "bad.jsonl"),
        "--systems",
        "good,bad",
        "--markdown",
        "--json",
        str(tmp_path / "s.json"),
    )
    assert r.returncode == 0, r.stderr
    assert r.stdout.splitlines()[0] == "| system | en | ja | pooled | mean | LID acc | RTF |"
    assert r.stdout.splitlines()[2] == "| good | 0.0 | 0.0 | 0.0 | 0.0 | 100.0 | 0.0123 |"
    # bad: en WER 1/3 (deletion), ja CER 1/3 (substitution), LID 1 of 2
    assert r.stdout.splitlines()[3] == "| bad | 33.3 | 33.3 | 33.3 | 33.3 | 50.0 | - |"
    assert json.loads((tmp_path / "s.json").read_text())["good"]["rtf"] == 0.0123
