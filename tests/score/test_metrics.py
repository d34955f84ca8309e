import pytest

from hlora_cli.errors import HloraError
from hlora_cli.score.metrics import score


def test_per_language_numbers_by_hand():
    refs = {"e1": ("en", "The cat sat."), "e2": ("en", "a dog"), "j1": ("ja", "今日は晴れ"), "d1": ("de", "Guten Tag")}
    hyps = {
        "e1": ("en", "the cat sad"),
        "e2": ("de", "a dog barks"),
        "j1": ("ja", "今日晴れだ"),
        "d1": ("de", "guten tag"),
    }
    s = score(refs, hyps)
    en, ja, de = s.languages["en"], s.languages["ja"], s.languages["de"]
    # en words: ref "the cat sat" + "a dog" = 5; sat->sad (S), + barks (I): 2/5
    assert (en.n, en.wer, en.sub, en.dele, en.ins) == (2, pytest.approx(2 / 5), 1, 0, 1)
    # en chars (spaces count): "the cat sat"(11) + "a dog"(5) = 16; t->d, +" barks"(6): 7/16
    assert en.cer == pytest.approx(7 / 16) and en.mer == en.wer
    # ja is scored by characters: 今日は晴れ (5) vs 今日晴れだ: は deleted, だ inserted -> 2/5
    assert (ja.wer, ja.cer, ja.mer, ja.sub, ja.dele, ja.ins) == (pytest.approx(0.4),) * 3 + (0, 1, 1)
    assert (de.wer, de.cer) == (0.0, 0.0)
    assert s.average["mer"] == pytest.approx((0.4 + 0.4 + 0.0) / 3)
    assert s.lid_accuracy == 0.75 and s.confusion["en"] == {"en": 1, "de": 1}


def test_without_languages_no_lid_and_mismatched_ids_error():
    s = score({"a": ("fr", "oui")}, {"a": (None, "Oui !")})
    assert s.lid_accuracy is None and s.languages["fr"].wer == 0.0
    with pytest.raises(HloraError, match=r"1 reference id\(s\) without hypothesis \(b...\); 1 hypothesis id\(s\) not"):
        score({"a": ("fr", "x"), "b": ("fr", "y")}, {"a": (None, "x"), "c": (None, "z")})


def test_pooled_mer_counts_every_reference_unit_while_mean_averages_languages():
    from hlora_cli.score.metrics import score

    refs = {"e": ("en", "one two three four five six seven eight nine ten"), "j": ("ja", "今日")}
    hyps = {"e": ("en", "one two three four five six seven eight nine tan"), "j": ("ja", "今")}
    s = score(refs, hyps)
    assert s.languages["en"].mer == pytest.approx(0.1) and s.languages["ja"].mer == pytest.approx(0.5)
    assert s.average["mer"] == pytest.approx(0.3)  # the mean of the two languages
    assert s.average["mer_pooled"] == pytest.approx(2 / 12)  # 1 word + 1 character error over 10 + 2 units
