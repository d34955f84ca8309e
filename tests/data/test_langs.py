import pytest

from hlora_cli.data.langs import language_list, resolve_language
from hlora_cli.errors import HloraError
from text_normalization import registry
from text_normalization.errors import LanguageError
from text_normalization.registry import Normalizer, get_normalizer, language_code, normalize, register_normalizer


def test_iso_codes_are_accepted_and_case_folded():
    assert [language_code(c) for c in ("en", "EN", "En-IN", "pt_BR", "yue", "tok", "zh-Hant-TW", "jw")] == [
        "en",
        "en",
        "en-IN",
        "pt_BR",
        "yue",
        "tok",
        "zh-Hant-TW",
        "jw",  # Whisper's code for Javanese (withdrawn ISO 639-1)
    ]


@pytest.mark.parametrize("code", ["xx", "klingon", "", "en-", "e n", "mul", "und", "123", None, 5])
def test_other_codes_are_one_line_errors(code):
    with pytest.raises(LanguageError) as e:
        language_code(code, "--lang")
    assert str(e.value) == (
        f"--lang: {code!r} is not a language code: use ISO 639-1 (en) or ISO 639-3 (yue), optionally with a "
        "region (en-IN), or register a normalizer for it"
    )


def test_normalizers_go_through_the_same_check():
    with pytest.raises(LanguageError, match=r"'xx' is not a language code"):
        get_normalizer("xx")
    assert normalize("Hello, World!", "EN") == "hello world"


def test_a_registered_normalizer_makes_its_code_valid(monkeypatch):
    monkeypatch.setattr(registry, "_REGISTRY", dict(registry._REGISTRY))
    with pytest.raises(LanguageError):
        language_code("qaz")
    register_normalizer(Normalizer("qaz", split_characters=True))
    assert language_code("QAZ-x1") == "qaz-x1" and get_normalizer("qaz").split_characters
    with pytest.raises(LanguageError, match=r"2 to 8 lower-case letters"):
        register_normalizer(Normalizer("qa-z"))
    monkeypatch.undo()  # the registry as it was: the cached answers about qaz must go with it
    registry.forget_cached_codes()
    with pytest.raises(LanguageError):
        language_code("qaz")


def test_language_lists_and_resolution():
    assert language_list("EN, de,en") == ["en", "de"] and language_list(None) is None
    with pytest.raises(HloraError, match=r"--languages: 'zz' is not a language code"):
        language_list("en,zz")
    with pytest.raises(HloraError, match=r"--languages ' , ': no language given"):
        language_list(" , ")
    assert resolve_language("EN-IN", ["en", "de"]) == "en" and resolve_language("fr", ["en"]) is None
    with pytest.raises(HloraError, match=r"'klingon' is not a language code"):
        resolve_language("klingon", ["en"])


def test_language_files_checks_each_pair():
    from hlora_cli.data.langs import language_files

    assert language_files(["EN=a.bin", "de=b c.bin"], "--lm", "en=en.bin") == {"en": "a.bin", "de": "b c.bin"}
    with pytest.raises(HloraError, match=r"^--lm en\.bin: expected LANG=PATH, e\.g\. --lm en=en\.bin$"):
        language_files(["en.bin"], "--lm", "en=en.bin")
    with pytest.raises(HloraError, match=r"^--text en=b\.txt: a second file for en$"):
        language_files(["en=a.txt", "en=b.txt"], "--text", "en=en.txt")
    with pytest.raises(HloraError, match="'english' is not a language code"):
        language_files(["english=a.txt"], "--text", "en=en.txt")


def test_hlora_reads_codes_as_its_own_errors_and_text_normalization_stands_alone():
    import subprocess
    import sys

    from hlora_cli.data.langs import language_code as hlora_code

    with pytest.raises(HloraError, match=r"^--lang: 'xx' is not a language code") as e:
        hlora_code("xx", "--lang")
    assert isinstance(e.value.__cause__, LanguageError) and not isinstance(e.value, LanguageError)
    imported = subprocess.run(
        [
            sys.executable,
            "-c",
            "import sys, text_normalization; print(any(m.startswith('hlora') for m in sys.modules))",
        ],
        capture_output=True,
        text=True,
        check=True,
    )
    assert imported.stdout.strip() == "False"
