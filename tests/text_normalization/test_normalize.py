import pytest

from tests.conftest import require_shared
from text_normalization import get_normalizer, normalize, rules
from text_normalization.registry import base_language

LANGS = ["de", "en", "es", "fr", "ja", "ko", "pt"]


def test_nfkc_folds_compatibility_forms():
    assert rules.nfkc("ＡＢＣ１２３ ﬁn ｶﾀｶﾅ") == "ABC123 fin カタカナ"


def test_case_folding_keeps_eszett_and_leaves_caseless_scripts():
    assert rules.fold_case("STRAßE Été") == "straße été"
    assert rules.fold_case("日本語 한국어") == "日本語 한국어"


def test_punctuation_removed_but_inner_apostrophes_and_decimal_marks_kept():
    assert rules.remove_punctuation("«Oui», dit-il.") == " Oui   dit il "
    assert rules.remove_punctuation("it’s 'quoted' l'homme", keep_apostrophes=True) == "it's  quoted  l'homme"
    assert rules.remove_punctuation("it's", keep_apostrophes=False) == "it s"
    assert rules.remove_punctuation("3.5, 1,000.") == "3.5  1,000 "


def test_split_characters_keeps_latin_words_and_digits_whole():
    assert rules.split_characters("今日はiPhone 15を買った") == "今 日 は iPhone 15 を 買 っ た"
    assert rules.split_characters("한국어 ok") == "한 국 어 ok"
    # a Thai consonant keeps its tone mark and vowel signs: ชื่ = ช + ื + ่
    assert rules.split_characters("ชื่อ") == "ชื่ อ"


def test_language_normalizers():
    assert normalize("Hello, World! It's 5 o'clock.", "en") == "hello world it's 5 o'clock"
    assert normalize("L’homme, c’est 3,5 %.", "fr") == "l'homme c'est 3,5"
    assert normalize("Das Haus – groß!", "de") == "das haus groß"
    assert normalize("今日はiPhoneを買った。", "ja") == "今 日 は iphone を 買 っ た"
    assert normalize("안녕하세요, 여러분!", "ko") == "안 녕 하 세 요 여 러 분"
    assert normalize("안녕하세요, 여러분!", "ko", keep_words=True) == "안녕하세요 여러분"
    assert normalize("Hi there.", "en-IN", prefix=True) == "<en> hi there"


def test_region_codes_and_unknown_languages():
    assert base_language("en-IN") == "en" and base_language("pt_BR") == "pt"
    assert get_normalizer("en-IN") == get_normalizer("en")
    assert normalize("Habari, Dunia!", "sw") == "habari dunia"  # generic rules


def test_prefix_is_not_doubled():
    once = normalize("Bonjour.", "fr", prefix=True)
    assert once == "<fr> bonjour" and normalize(once, "fr", prefix=True) == once


@pytest.mark.parametrize("lang", LANGS)
def test_idempotent_on_every_test_sentence(lang):
    path = require_shared(f"data/text/{lang}/test.txt")
    lines = path.read_text(encoding="utf-8").splitlines()
    assert len(lines) > 400
    for line in lines:
        for kw in ({}, {"prefix": True}, {"keep_words": True}):
            once = normalize(line, lang, **kw)
            assert normalize(once, lang, **kw) == once, (line, once)
            assert once == once.strip() and "  " not in once
