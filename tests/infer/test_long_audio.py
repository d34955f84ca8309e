import json

import numpy as np
import pytest
import soundfile as sf

from hlora_cli.data.audio import load_audio
from hlora_cli.infer.inputs import Item
from hlora_cli.infer.long_audio import stitch, windows
from hlora_cli.infer.options import DecodeOptions
from hlora_cli.infer.runner import Recognizer
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


@pytest.mark.slow
def test_windowed_decoding_is_as_good_as_one_pass_on_a_recording_short_enough_for_both(espeak_run, tmp_path):
    """About 8 s of German clips: one pass against 5 s windows with 2 s overlap (the model was trained
    on 1-3 s clips, so longer inputs would test its length generalisation, not the windows). The
    windows must find the same language and be no further from the words spoken than one pass is.
    (The two transcripts are not compared with each other: this small model's output on joined clips
    changes with any change of context, by a third of the characters between these two.)"""
    import jiwer

    from hlora_cli.data.manifest import read_manifest

    run_dir, corpus = espeak_run
    german = [u for u in read_manifest(corpus / "manifest.jsonl") if u.lang == "de"]
    gap = np.zeros(8000, dtype=np.float32)
    parts, refs = [], []
    for u in german:
        if sum(len(p) for p in parts) / 16000 > 6:
            break
        parts += [load_audio(u.audio), gap]
        refs.append(u.text_norm)
    audio = np.concatenate(parts)
    sf.write(str(tmp_path / "de.wav"), audio, 16000)
    assert 6 < len(audio) / 16000 < 10
    model = load_model(run_dir / "best")
    results = {}
    for window in (30.0, 5.0):
        options = DecodeOptions(mode="single", window=window, overlap=2.0)
        results[window] = Recognizer(model, options).run([Item("de", str(tmp_path / "de.wav"))]).results[0]
    one_pass, windowed = results[30.0], results[5.0]
    assert one_pass.lang == windowed.lang == "de"  # the recording's language, from its windows' average
    assert windowed.lang_probs["de"] > 0.9 and sum(windowed.lang_probs.values()) == pytest.approx(1, abs=1e-3)
    reference = " ".join(refs)
    assert jiwer.cer(reference, windowed.text) <= jiwer.cer(reference, one_pass.text) + 0.1
    assert jiwer.cer(reference, windowed.text) < 0.75  # measured 0.53 (one pass 0.61)
