import numpy as np
import pytest

from hlora_cli.data.vocab import SPECIALS
from hlora_cli.errors import HloraError
from hlora_cli.infer.ctc_beam import BeamDecoder
from hlora_cli.infer.lm import build_lm, kenlm_tool
from hlora_cli.model.ctc_decoding import greedy_hypothesis
from tests.conftest import lmplz_or_skip

VOCAB = SPECIALS + list("abcdefghijklmnopqrstuvwxyz")


def near_miss(sentence: str, last: tuple[str, str]) -> np.ndarray:
    """Log-probs spelling `sentence`, except that the final character is a close call between
    last[0] (slightly ahead) and last[1]."""
    frames = []
    for ch in sentence:
        p = np.full(len(VOCAB), 1e-4)
        p[VOCAB.index("|" if ch == " " else ch)] = 1.0
        frames.append(p)
        blank = np.full(len(VOCAB), 1e-4)
        blank[0] = 1.0
        frames.append(blank)
    p = np.full(len(VOCAB), 1e-4)
    p[VOCAB.index(last[0])], p[VOCAB.index(last[1])] = 0.55, 0.45
    frames.insert(len(frames) - 1, p)
    x = np.array(frames)
    return np.log(x / x.sum(1, keepdims=True)).astype(np.float32)


def test_kenlm_beam_search_repairs_a_near_miss(tmp_path):
    lmplz_or_skip()
    lines = ["the cat sat on the mat", "a dog sat on the mat", "the cat is on the mat", "my cat likes the mat"] * 5
    arpa, binary = build_lm(lines, tmp_path / "en", order=3)
    arpa_lines = arpa.read_text().lstrip("\n").splitlines()  # an ARPA file: \data\, then one count per order
    assert arpa_lines[0] == "\\data\\"
    assert [x.split("=")[0] for x in arpa_lines[1:4]] == ["ngram 1", "ngram 2", "ngram 3"]
    log_probs = near_miss("the cat sat on the ma", ("d", "t"))
    assert greedy_hypothesis(log_probs, VOCAB, "en", 50.0).text == "the cat sat on the mad"
    assert BeamDecoder(VOCAB, "en")(log_probs, 50.0).text == "the cat sat on the mad"  # no LM: same as greedy
    for lm in (arpa, binary):
        hyp = BeamDecoder(VOCAB, "en", str(lm), alpha=0.8, beta=0.5)(log_probs, 50.0)
        assert hyp.text == "the cat sat on the mat"
        assert [w for w, _, _ in hyp.words] == "the cat sat on the mat".split()


def test_lm_build_cli_and_missing_tool_message(tmp_path, monkeypatch):
    from hlora_cli.data.manifest import Utterance, write_manifest
    from tests.helpers import hlora

    lmplz_or_skip()
    utts = [
        Utterance(f"u{i}", "x.wav", lang, text)
        for i, (lang, text) in enumerate(
            [("en", "Hello there."), ("en", "Hello world!"), ("ja", "今日は。"), ("ja", "今日も")]
        )
    ]
    write_manifest(tmp_path / "m.jsonl", utts)
    r = hlora("lm", "build", str(tmp_path / "m.jsonl"), "-o", str(tmp_path / "lm"), "--order", "2")
    assert r.returncode == 0, r.stderr
    assert sorted(p.name for p in (tmp_path / "lm").iterdir()) == ["en.arpa", "en.bin", "ja.arpa", "ja.bin"]
    assert "今" in (tmp_path / "lm" / "ja.arpa").read_text()  # characters are the words of a CER language
    monkeypatch.setenv("PATH", "/nonexistent")
    monkeypatch.setattr("hlora_cli.infer.lm.TOOLS", tmp_path / "none")
    with pytest.raises(HloraError, match=r"KenLM's lmplz not found: no package ships it; run `make kenlm`"):
        kenlm_tool("lmplz")


def test_a_kenlm_binary_without_its_arpa_is_refused(tmp_path):
    """pyctcdecode cannot read a binary's word list: without X.arpa beside X.bin, every partial
    word would score as unknown, so the beam decoder refuses it in one line."""
    import shutil

    lmplz_or_skip()
    _, binary = build_lm(["the cat sat on the mat"] * 5, tmp_path / "en", order=2)
    alone = tmp_path / "alone" / "en.bin"
    alone.parent.mkdir()
    shutil.copy(binary, alone)
    with pytest.raises(HloraError, match=r"en\.bin: a KenLM binary needs its word list .* as en\.arpa"):
        BeamDecoder(VOCAB, "en", str(alone))
    assert BeamDecoder(VOCAB, "en", str(binary)).decoder is not None  # with en.arpa beside it
