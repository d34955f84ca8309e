import pytest

from hlora_cli.data.manifest import Utterance
from hlora_cli.data.vocab import SPECIALS, UNK, WORD, Vocab, build_vocab, coverage, from_tokens, to_tokens
from hlora_cli.errors import HloraError


def test_tokens_of_word_and_character_languages():
    assert to_tokens("it's ok", "en") == list("it's") + [WORD] + list("ok")
    # CER languages: no boundary between split characters, one between two Latin words
    assert to_tokens("今 日 は iphone ipad を", "ja") == ["今", "日", "は", *"iphone", WORD, *"ipad", "を"]
    assert to_tokens("안녕하세요 여러분", "ko") == [*"안녕하세요", WORD, *"여러분"]  # --keep-words Korean
    assert to_tokens("<en> hi you", "en") == ["<en>", "h", "i", WORD, "y", "o", "u"]


def test_from_tokens_inverts_to_tokens_after_normalization():
    for text, lang in [
        ("it's ok", "en"),
        ("今 日 は iphone ipad を", "ja"),
        ("안 녕 하 세 요", "ko"),
        ("<de> guten tag", "de"),
    ]:
        expected = text.split(" ", 1)[1] if text.startswith("<") else text
        assert from_tokens(to_tokens(text, lang), lang) == expected


def utts():
    return [
        Utterance("1", "a.wav", "en", "Hello, world!"),
        Utterance("2", "b.wav", "ja", "今日は。"),
        Utterance("3", "c.wav", "en", "x", text_norm="bye"),
    ]


def test_build_vocab_and_encode():
    v = build_vocab(utts(), prefix_tokens=True)
    assert v.languages["en"] == SPECIALS + sorted(set("helloworldbye"))
    assert v.languages["ja"] == SPECIALS + ["は", "今", "日"]  # code point order
    assert v.shared[:5] == SPECIALS + ["<en>", "<ja>"] and set(v.shared[5:]) == set("helowrdby今日は")
    ids, unknown = v.encode("hello zz", "en")
    tokens = v.languages["en"]
    assert [tokens[i] for i in ids] == [*"hello", WORD, UNK, UNK] and unknown == 2
    with pytest.raises(HloraError, match="language fr has no token inventory"):
        v.encode("salut", "fr")


def test_save_load_and_coverage(tmp_path):
    v = build_vocab(utts())
    v.save(tmp_path / "vocab.json")
    assert Vocab.load(tmp_path / "vocab.json") == v
    report = coverage([Utterance("4", "d.wav", "en", "Hello, Zed!"), Utterance("5", "e.wav", "fr", "oui")], v)
    assert report["en"]["missing"] == {"z": 1} and report["en"]["chars"] == 8  # "hello zed"
    assert report["en"]["covered"] == pytest.approx(7 / 8)
    assert report["fr"]["no_inventory"]
    (tmp_path / "bad.json").write_text('{"languages": {"en": ["a"]}}')
    with pytest.raises(HloraError, match=r"bad.json: inventory of en must start with"):
        Vocab.load(tmp_path / "bad.json")
