"""Chinese is scored in one script: Whisper writes Traditional characters for much Mandarin speech,
and a script variant of the same word is no recognition error."""

from hlora_cli.score.metrics import char_errors
from text_normalization import normalize
from text_normalization.rules import fold_chinese_script


def test_traditional_folds_to_simplified():
    assert normalize("本保險的條款，臺灣。", "zh") == "本 保 险 的 条 款 台 湾"
    assert normalize("本保险的条款", "zh") == normalize("本保險的條款", "zh")
    # idempotent, and other languages untouched (Japanese kanji keep their form)
    once = normalize("這個課程很難", "zh")
    assert normalize(once, "zh") == once
    assert normalize("學校", "ja") == "學 校"
    assert fold_chinese_script("no han here") == "no han here"


def test_digits_are_scored_as_written():
    # `150` against `一百五十`: the reading of a number is part of the transcript
    assert normalize("每年150元", "zh") == "每 年 150 元"
    assert normalize("每年一百五十元", "zh") == "每 年 一 百 五 十 元"


def test_a_traditional_hypothesis_scores_as_its_simplified_form():
    ref = normalize("本保险每年一百五十元", "zh")
    assert char_errors([ref], [normalize("本保險每年一百五十元", "zh")], "zh") == (0, 10)
    assert char_errors([ref], [normalize("本保險每年150元", "zh")], "zh") == (4, 10)  # 3 substitutions + 1 deletion
