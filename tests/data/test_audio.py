import json

import numpy as np
import pytest
import soundfile as sf

from hlora_cli.data.audio import audio_info, load_audio
from hlora_cli.errors import HloraError
from tests.data.helpers import tone, write_audio


def test_8khz_stereo_is_resampled_and_downmixed(tmp_path):
    path = write_audio(tmp_path / "a.wav", 1.5, sr=8000, channels=2)
    x = load_audio(path)
    assert x.dtype == np.float32 and x.ndim == 1 and len(x) == 24000
    # a 440 Hz tone survives resampling: its spectrum peaks at 440 Hz
    peak = np.argmax(np.abs(np.fft.rfft(x))) * 16000 / len(x)
    assert abs(peak - 440) < 2


def test_downmix_averages_channels(tmp_path):
    left, right = tone(0.5), np.zeros(8000, np.float32)
    sf.write(str(tmp_path / "s.wav"), np.stack([left, right], 1), 16000, subtype="FLOAT")
    np.testing.assert_allclose(load_audio(tmp_path / "s.wav"), left / 2, atol=1e-6)


def test_segment_read_matches_slice_of_whole(tmp_path):
    path = write_audio(tmp_path / "a.flac", 3.0)
    whole = load_audio(path)
    seg = load_audio(path, start=1.25, end=2.0)
    assert len(seg) == 12000
    np.testing.assert_allclose(seg, whole[20000:32000], atol=1e-6)


@pytest.mark.parametrize("fmt", ["flac", "ogg", "mp3"])
def test_compressed_formats(tmp_path, fmt):
    path = write_audio(tmp_path / f"a.{fmt}", 1.0, sr=16000 if fmt != "mp3" else 44100)
    x = load_audio(path)
    assert abs(len(x) - 16000) < 1200 and np.abs(x).max() > 0.1


def test_missing_corrupt_and_empty_files_are_clear_errors(tmp_path):
    with pytest.raises(HloraError, match=r"nope.wav: audio file not found"):
        load_audio(tmp_path / "nope.wav")
    (tmp_path / "bad.wav").write_bytes(b"RIFF\x00\x00garbage" * 10)
    with pytest.raises(HloraError, match=r"bad.wav: cannot read audio \("):
        load_audio(tmp_path / "bad.wav")
    sf.write(str(tmp_path / "empty.wav"), np.zeros(0, np.float32), 16000)
    with pytest.raises(HloraError, match=r"empty.wav: audio file has no samples"):
        load_audio(tmp_path / "empty.wav")


def test_segment_beyond_end_is_a_clear_error(tmp_path):
    path = write_audio(tmp_path / "a.wav", 2.0)
    with pytest.raises(HloraError, match=r"a.wav: segment from 1.00 s to 3.00 s ends after the file's end \(2.00 s\)"):
        load_audio(path, 1.0, 3.0)
    assert audio_info(path).duration == 2.0
    with pytest.raises(HloraError) as e:  # not "-1.0-0.30000000000000004 s"
        load_audio(path, -1.0, 0.1 + 0.2)
    assert str(e.value) == f"{path}: segment from -1.00 s to 0.30 s is empty or starts before the file"


def test_every_real_clip_reads_as_16k_mono_float32(real_manifest):
    rows = [json.loads(line) for line in real_manifest.read_text().splitlines()]
    assert len(rows) == 20
    for row in rows:
        path = real_manifest.parent / row["audio"]
        x = load_audio(path)
        info = audio_info(path)
        assert x.dtype == np.float32 and x.ndim == 1
        assert info.sample_rate == 16000 and len(x) == info.frames and 1.0 < len(x) / 16000 < 30
