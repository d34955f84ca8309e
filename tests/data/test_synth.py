import random
import shutil

import pytest

from hlora_cli.data.audio import audio_info
from hlora_cli.data.synth import TEST_VARIANTS, TRAIN_VARIANTS, pick_voice, synth_corpus
from hlora_cli.errors import HloraError
from tests.conftest import unavailable


def test_test_voices_are_never_training_voices():
    assert not set(TRAIN_VARIANTS) & set(TEST_VARIANTS)
    rng = random.Random(0)
    train = {pick_voice("en", "train", rng, None).name for _ in range(200)}
    test = {pick_voice("en", "test", rng, None).name for _ in range(200)}
    assert train and test and not train & test
    with pytest.raises(HloraError, match="Japanese needs Open JTalk and an HTS voice"):
        pick_voice("ja", "train", rng, None)
    with pytest.raises(HloraError, match="no espeak-ng voice configured for language sw"):
        pick_voice("sw", "train", rng, None)


def test_synth_corpus_is_16k_mono_and_deterministic(tmp_path):
    if shutil.which("espeak-ng") is None:
        unavailable("espeak-ng not installed (apt-get install espeak-ng)")
    texts = {"en": ["good morning", "- starts with a dash", "?", "-----"], "de": ["guten morgen"]}
    utts = synth_corpus(texts, "test", 3, tmp_path / "a", seed=5)
    assert [u.id for u in utts] == [f"{lang}_test_{i:05d}" for lang in ("de", "en") for i in range(3)]
    assert [u.text for u in utts if u.lang == "de"] == ["guten morgen"] * 3  # repeats with other voices
    assert {u.text for u in utts if u.lang == "en"} == {"good morning", "- starts with a dash"}
    for u in utts:
        info = audio_info(u.audio)
        assert (info.sample_rate, info.channels) == (16000, 1) and 0.3 < info.duration < 5
    again = synth_corpus(texts, "test", 3, tmp_path / "b", seed=5)
    assert [open(u.audio, "rb").read() for u in utts] == [open(u.audio, "rb").read() for u in again]


def test_synth_corpus_rejects_a_language_without_real_sentences(tmp_path):
    with pytest.raises(HloraError, match="no sentence with at least 3 letters for language en"):
        synth_corpus({"en": ["?", "-----", "ok"]}, "train", 2, tmp_path)
