import json

import numpy as np
import pytest
import soundfile as sf

from hlora_cli.data.audio import load_audio
from hlora_cli.infer.inputs import Item
from hlora_cli.infer.long_audio import stitch, windows
from hlora_cli.infer.runner import DecodeOptions, Recognizer
from hlora_cli.model import load_model


@pytest.mark.parametrize("duration", [10.0, 25.0, 25.01, 61.3, 3600.0])
def test_windows_cover_every_moment_exactly_once(duration):
    ws = windows(0, duration, 25.0, 2.0)
    assert ws[0].keep_from == 0 and ws[-1].keep_to == duration and ws[-1].end == duration
    for a, b in zip(ws, ws[1:], strict=False):
        assert a.keep_to == pytest.approx(b.keep_from)  # kept parts tile [0, duration]
    for w in ws:
        assert w.end - w.start <= 25.0 + 1e-9 and w.start <= w.keep_from < w.keep_to <= w.end
        if 0 < w.index < len(ws) - 1:  # a middle window keeps 1 s of context on each side
            assert w.keep_from - w.start == pytest.approx(1.0) and w.end - w.keep_to == pytest.approx(1.0)


def test_stitch_takes_each_frame_from_one_window():
    fps, duration = 50.0, 61.3
    ws = windows(0, duration, 25.0, 2.0)
    # every window's "log-probs" are the absolute frame times, so stitching must give 0, 1, 2, ...
    parts = [(w, np.arange(round(w.start * fps), round(w.end * fps), dtype=np.float32)[:, None]) for w in ws]
    out = stitch(parts[::-1], fps)[:, 0]
    np.testing.assert_array_equal(out, np.arange(round(duration * fps)))


@pytest.mark.slow
def test_three_minutes_of_real_clips_decode_in_windows(espeak_run, real_manifest, tmp_path):
    rows = [json.loads(line) for line in real_manifest.read_text().splitlines()]
    clips = [load_audio(real_manifest.parent / r["audio"]) for r in rows]
    audio = np.concatenate(clips + clips)  # ~3.2 minutes
    sf.write(str(tmp_path / "long.wav"), audio, 16000)
    duration = len(audio) / 16000
    assert duration > 180
    model = load_model(espeak_run[0] / "best")
    recognizer = Recognizer(model, DecodeOptions(mode="single", window=25.0, overlap=2.0))
    report = recognizer.run([Item("long", str(tmp_path / "long.wav"))])
    result = report.results[0]
    assert result.duration == pytest.approx(duration) and report.audio_seconds == pytest.approx(duration)
    assert set(result.lang_probs) == {"en", "de"} and sum(result.lang_probs.values()) == pytest.approx(1, abs=1e-3)
    starts = [w[1] for w in result.words]
    assert starts == sorted(starts) and 0 <= starts[0] and result.words[-1][2] <= duration + 0.05
    assert starts[-1] > duration - 30  # words come from the whole recording, not the first window
