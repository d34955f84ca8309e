"""One bad clip never sinks a job (reliability, round 3): a clip shorter than one encoder frame and a
FIFO listed as audio are skipped with a warning naming the file; the rest is decoded."""

import json
import os

import numpy as np
import soundfile as sf

from hlora_cli.model import build_model, save_model
from tests.conftest import tiny_config
from tests.data.helpers import write_audio
from tests.helpers import run_main, run_main_output


def test_decode_and_lid_skip_a_clip_shorter_than_a_frame_and_a_fifo(tmp_path):
    save_model(build_model(tiny_config("whisper", k=2)), tmp_path / "m")
    sf.write(str(tmp_path / "tiny.wav"), np.zeros(160, dtype=np.float32), 16000)  # 10 ms
    os.mkfifo(tmp_path / "pipe.wav")
    rows = [
        {"id": "ok", "audio": str(write_audio(tmp_path / "ok.wav", 0.8)), "lang": "en", "text": "a"},
        {"id": "tiny", "audio": str(tmp_path / "tiny.wav"), "lang": "en", "text": "a"},
        {"id": "fifo", "audio": str(tmp_path / "pipe.wav"), "lang": "en", "text": "a"},
    ]
    (tmp_path / "t.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    for command in ("decode", "lid"):
        out = tmp_path / f"{command}.jsonl"
        code, err = run_main(command, tmp_path / "t.jsonl", "--model", tmp_path / "m", "--num-workers", "0", "-o", out)
        assert code in (0, 1) and "Traceback" not in err, err
        assert [json.loads(line)["id"] for line in out.read_text().splitlines()] == ["ok"]
    code, out, err = run_main_output(
        "decode", tmp_path / "t.jsonl", "--model", tmp_path / "m", "--num-workers", "0", "-o", tmp_path / "again.jsonl"
    )
    assert code == 1 and "Traceback" not in err
    err = " ".join(out.split())  # the console wraps long lines
    assert f"tiny: {tmp_path / 'tiny.wav'}: 10 ms of audio, shorter than one frame of the encoder (320 samples)" in err
    assert f"fifo: {tmp_path / 'pipe.wav'}: not a regular file; give an audio file" in err


def test_training_skips_a_clip_shorter_than_50_ms(tmp_path):
    from hlora_cli.data.manifest import Utterance
    from hlora_cli.data.vocab import build_vocab
    from hlora_cli.train.data import load_examples

    sf.write(str(tmp_path / "tiny.wav"), np.zeros(160, dtype=np.float32), 16000)
    utts = [
        Utterance("ok", str(write_audio(tmp_path / "ok.wav", 0.8)), "en", "a b"),
        Utterance("tiny", str(tmp_path / "tiny.wav"), "en", "a"),
    ]
    from hlora_cli.data.manifest import write_manifest

    write_manifest(tmp_path / "t.jsonl", utts)
    vocab = build_vocab(utts)
    examples = load_examples(tmp_path / "t.jsonl", vocab, ["en"], False, 30.0)
    assert [e.utt.id for e in examples.examples] == ["ok"] and dict(examples.skipped) == {"shorter than 50 ms": 1}
