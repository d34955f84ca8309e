import time

import numpy as np
import pytest
import soundfile as sf
import torch

from hlora_cli.errors import HloraError
from hlora_cli.infer.inputs import Item
from hlora_cli.infer.options import DecodeOptions
from hlora_cli.infer.runner import Recognizer
from hlora_cli.model import build_model
from tests.conftest import LANGS, tiny_config, waves
from tests.infer.conftest import model, with_langs


def test_single_pass_with_correct_lid_equals_oracle(items):
    m = model("hlora", 1)
    single = Recognizer(m, DecodeOptions(mode="single")).run(items).results
    predicted = [r.lang for r in single]
    oracle = Recognizer(m, DecodeOptions(mode="oracle")).run(with_langs(items, predicted)).results
    assert [(r.id, r.text, r.lang) for r in single] == [(r.id, r.text, r.lang) for r in oracle]
    # guard: with other languages the text changes, so the equality above can fail
    others = [LANGS[(LANGS.index(code) + 1) % len(LANGS)] for code in predicted]
    wrong = Recognizer(m, DecodeOptions(mode="oracle")).run(with_langs(items, others)).results
    assert [r.text for r in wrong] != [r.text for r in single]


def test_two_stage_with_correct_first_stage_equals_oracle(items):
    first, second = model("baseline", 2), model("lidlora", 3)
    two = Recognizer(second, DecodeOptions(mode="two-stage"), lid_model=first).run(items).results
    chosen = [r.lang for r in two]
    assert all(abs(sum(r.lang_probs.values()) - 1) < 1e-3 for r in two)
    oracle = Recognizer(second, DecodeOptions(mode="oracle")).run(with_langs(items, chosen)).results
    assert [r.text for r in two] == [r.text for r in oracle]
    first_only = Recognizer(first, DecodeOptions(mode="single")).identify(items).results
    assert [r.lang for r in first_only] == chosen


def test_merged_decoding_equals_unmerged(items):
    m = model("hlora", 4)
    a = Recognizer(m, DecodeOptions(mode="single", merge=False)).run(items).results
    b = Recognizer(model("hlora", 4), DecodeOptions(mode="single", merge=True)).run(items).results
    assert [(r.lang, r.text) for r in a] == [(r.lang, r.text) for r in b]
    # guard: the adapters change the output, so the equality above is about them
    bare = model("hlora", 4)
    with torch.no_grad():
        for name, p in bare.named_parameters():
            if ".lora_" in name:
                p.zero_()
    c = Recognizer(bare, DecodeOptions(mode="single", merge=True)).run(items).results
    assert [(r.lang, r.text) for r in c] != [(r.lang, r.text) for r in a]


def test_mode_errors(items):
    with pytest.raises(HloraError, match="lidlora model has no LID head: decode it with --mode oracle"):
        Recognizer(model("lidlora", 0), DecodeOptions(mode="single"))
    with pytest.raises(HloraError, match="two-stage decoding needs --lid-model"):
        Recognizer(model("hlora", 0), DecodeOptions(mode="two-stage"))
    # an expert as first stage knows one language: it would route everything there
    config = tiny_config("whisper", "expert")
    config.languages, config.vocabs = [LANGS[0]], {LANGS[0]: config.vocabs[LANGS[0]]}
    expert = build_model(config).eval()
    with pytest.raises(HloraError) as e:
        Recognizer(model("lidlora", 0), DecodeOptions(mode="two-stage"), lid_model=expert)
    assert str(e.value) == (
        f"the --lid-model tells only {LANGS[0]} apart, the model decodes {', '.join(LANGS)}: give a first stage "
        "whose LID covers every language of the model"
    )
    with pytest.raises(HloraError, match="oracle decoding needs a language for u0"):
        Recognizer(model("hlora", 0), DecodeOptions(mode="oracle")).run(items)


def test_unreadable_file_is_skipped_and_others_decoded(items, tmp_path):
    (tmp_path / "bad.wav").write_bytes(b"not audio")
    started = time.perf_counter()
    report = Recognizer(model("hlora", 0), DecodeOptions()).run([*items, Item("bad", str(tmp_path / "bad.wav"))])
    elapsed = time.perf_counter() - started
    assert 0 < report.wall_seconds <= elapsed and report.rtf == report.wall_seconds / report.audio_seconds
    assert [r.id for r in report.results] == [it.id for it in items]
    assert report.skipped[0][0] == "bad" and "bad.wav: cannot read audio" in report.skipped[0][1]
    assert np.isclose(report.audio_seconds, 0.9 + 0.5 + 1.2 + 0.7 + 0.6)  # the skipped file counts no audio


@pytest.mark.parametrize("mode", ["single", "two-stage"])
def test_corrupt_data_behind_a_valid_header_is_skipped(items, tmp_path, mode):
    """The header reads (so the file passes the first check); its data does not decode."""
    sf.write(str(tmp_path / "good.flac"), waves([1.5], seed=3)[0], 16000)
    data = bytearray((tmp_path / "good.flac").read_bytes())
    data[len(data) // 3 :] = bytes((b * 7 + 13) % 256 for b in data[len(data) // 3 :])
    (tmp_path / "bad.flac").write_bytes(bytes(data))
    first = model("baseline", 2) if mode == "two-stage" else None
    m = model("lidlora", 3) if mode == "two-stage" else model("hlora", 0)
    clean = Recognizer(m, DecodeOptions(mode=mode), lid_model=first).run(items)
    report = Recognizer(m, DecodeOptions(mode=mode), lid_model=first).run(
        [*items[:2], Item("bad", str(tmp_path / "bad.flac")), *items[2:]]
    )
    assert [(r.id, r.lang, r.text) for r in report.results] == [(r.id, r.lang, r.text) for r in clean.results]
    assert report.skipped == [
        ("bad", f"{tmp_path / 'bad.flac'}: cannot decode audio (Error : flac decoder lost sync.)")
    ]
    assert np.isclose(report.audio_seconds, clean.audio_seconds)
