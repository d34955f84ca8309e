"""README claims through the CLI that no other test checks: two-stage decoding, KenLM beam search
(`--lm LANG=PATH`), beam search for character-scored languages, long recordings in windows
(two-stage and oracle), `backbone import-ct2` errors, `--whisper-languages`, `--debug` and
`hlora lid --plot`. Tiny random models, saved as model directories, stand in for trained ones."""

from __future__ import annotations

import json
import struct
import sys
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import soundfile as sf
import torch

from hlora_cli.data.manifest import Utterance, read_manifest, write_manifest
from hlora_cli.data.vocab import SPECIALS
from hlora_cli.model import BackboneRef, ModelConfig, build_model, save_model
from tests.conftest import LANGS, TINY, VOCAB, randomize_adapters, tiny_config
from tests.helpers import hlora, run_cli

SR = 16000


pytestmark = pytest.mark.usefixtures("one_thread")


def clip(i: int, seconds: float) -> np.ndarray:
    """A tone whose pitch, vibrato and noise differ with i, so that a random LID head tells clips apart."""
    rng = np.random.default_rng(i)
    t = np.arange(int(seconds * SR)) / SR
    x = 0.3 * np.sin(2 * np.pi * (150 + 170 * i) * t) * (1 + 0.5 * np.sin(2 * np.pi * 3 * t))
    return (x + 0.05 * (i % 3) * rng.standard_normal(len(t))).astype(np.float32)


SECONDS = [0.9, 0.5, 1.2, 0.7, 0.6, 1.0, 0.8]


def saved(root: Path, name: str, model_type: str, seed: int) -> Path:
    model = build_model(tiny_config("whisper", model_type))
    randomize_adapters(model, seed=seed, scale=0.3)
    return save_model(model, root / name)


@pytest.fixture(scope="module")
def world(tmp_path_factory) -> SimpleNamespace:
    """Seven clips, a shared-LoRA first stage, a LIDLoRA second stage and an HLoRA model."""
    root = tmp_path_factory.mktemp("world")
    wavs = []
    for i, seconds in enumerate(SECONDS):
        sf.write(str(root / f"u{i}.wav"), clip(i, seconds), SR)
        wavs.append(root / f"u{i}.wav")
    return SimpleNamespace(
        root=root,
        wavs=wavs,
        first=saved(root, "first", "shared-lora", 3),
        second=saved(root, "second", "lidlora", 3),
        hlora=saved(root, "hlora", "hlora", 5),
    )


def precondition(ok: bool, message: object = "") -> None:
    """A check the test's claim rests on (its set-up): a RuntimeError, so that a broken set-up reads
    as such and not as the claim failing."""
    if not ok:
        raise RuntimeError(f"precondition failed: {message}")


def read(path: Path) -> dict[str, dict]:
    return {r["id"]: r for r in map(json.loads, path.read_text().splitlines())}


def meta(out: Path) -> dict:
    return json.loads(out.with_suffix(".meta.json").read_text())


def decode(out: Path, *args) -> dict[str, dict]:
    run_cli("decode", *args, "-o", out)
    return read(out)


def decode_ok(out: Path, *args) -> dict[str, dict]:
    """decode() where a failing command is a broken set-up, not the claim (see precondition)."""
    r = run_cli("decode", *args, "-o", out, check=False)
    precondition(r.returncode == 0, (r.stderr, r.stdout[-2000:]))
    return read(out)


def with_langs(path: Path, wavs: list[Path], langs: dict[str, str]) -> Path:
    return write_manifest(path, [Utterance(w.stem, str(w), langs[w.stem], "x") for w in wavs])


def entry(monkeypatch, capsys, *args) -> tuple[object, str]:
    """`hlora ARGS` through the real entry point (main(): its error printing and exit codes) in this
    process: (exit code, or 'uncaught <exception>' where one escaped as a traceback would, stderr)."""
    from hlora_cli.cli import main as cli_main

    monkeypatch.setattr(sys, "argv", ["hlora", *map(str, args)])
    monkeypatch.setenv("COLUMNS", "400")
    monkeypatch.setitem(cli_main._state, "debug", False)
    try:
        cli_main.main()
        code: object = 0
    except SystemExit as e:
        code = e.code
    except Exception as e:  # noqa: BLE001 - the point: what escapes main() is a traceback for the user
        code = f"uncaught {type(e).__name__}"
    return code, capsys.readouterr().err


# --- 1. two-stage decoding --------------------------------------------------------------------


def test_two_stage_decoding_equals_oracle_decoding_with_the_first_stage_languages(world, tmp_path):
    args = ["--model", world.second, "--mode", "two-stage", "--lid-model", world.first]
    two = decode(tmp_path / "two.jsonl", *world.wavs, *args)
    langs = {i: r["lang"] for i, r in two.items()}
    assert sorted(langs) == [f"u{i}" for i in range(7)]
    assert len(set(langs.values())) >= 2, langs  # the first stage picks more than one language here
    for r in two.values():
        assert sum(r["lang_probs"].values()) == pytest.approx(1, abs=1e-3)
        assert r["lang"] == max(r["lang_probs"], key=r["lang_probs"].get)
    # the languages are the first stage's own LID
    run_cli("lid", *world.wavs, "--model", world.first, "-o", tmp_path / "lid.jsonl")
    assert {i: (r["lang"], r["lang_probs"]) for i, r in read(tmp_path / "lid.jsonl").items()} == {
        i: (r["lang"], r["lang_probs"]) for i, r in two.items()
    }
    # oracle decoding with those languages written into a manifest gives the same texts
    given = with_langs(tmp_path / "given.jsonl", world.wavs, langs)
    oracle = decode(tmp_path / "oracle.jsonl", given, "--model", world.second, "--mode", "oracle")
    assert {i: (r["lang"], r["text"]) for i, r in oracle.items()} == {i: (r["lang"], r["text"]) for i, r in two.items()}
    assert any(r["text"] for r in two.values())
    # guard: other languages give other texts, so the equality above can fail
    shifted = {i: LANGS[(LANGS.index(code) + 1) % len(LANGS)] for i, code in langs.items()}
    other = decode(
        tmp_path / "other.jsonl",
        with_langs(tmp_path / "o.jsonl", world.wavs, shifted),
        "--model",
        world.second,
        "--mode",
        "oracle",
    )
    assert {i: r["text"] for i, r in other.items()} != {i: r["text"] for i, r in two.items()}
    m = meta(tmp_path / "two.jsonl")
    assert (m["mode"], m["lid_model"], m["model"], m["utterances"]) == (
        "two-stage",
        str(world.first),
        str(world.second),
        7,
    )


def test_two_stage_without_lid_model_is_a_one_line_error(world, tmp_path, monkeypatch, capsys):
    out = tmp_path / "two.jsonl"
    code, err = entry(
        monkeypatch, capsys, "decode", world.wavs[0], "--model", world.second, "--mode", "two-stage", "-o", out
    )
    assert code == 2
    assert err.splitlines() == ["error: two-stage decoding needs --lid-model (a ctc, shared-lora or hlora model)"]
    assert not out.exists() and not out.with_suffix(".text").exists()


# --- 2. KenLM beam search through `hlora decode` ----------------------------------------------


@pytest.fixture(scope="module")
def lm_world(world, tmp_path_factory):
    """An HLoRA model whose CTC heads are made 2x sharper; u0-u3 are English, u4-u6 German; an
    English 2-gram LM of the words `abba` and `baab` built by `hlora lm build`."""
    from tests.conftest import lmplz_or_skip

    lmplz_or_skip()
    root = tmp_path_factory.mktemp("lm")
    model = build_model(tiny_config("whisper", "hlora"))
    randomize_adapters(model, seed=4, scale=0.3)
    with torch.no_grad():
        for head in model.readout.heads:
            head.weight.mul_(2)
            head.bias.mul_(2)
    save_model(model, root / "m")
    langs = {f"u{i}": "en" if i < 4 else "de" for i in range(7)}
    test = with_langs(root / "test.jsonl", world.wavs, langs)
    sentences = ["abba baab", "baab abba", "abba abba baab"] * 3
    text = write_manifest(root / "text.jsonl", [Utterance(f"t{i}", "t.wav", "en", s) for i, s in enumerate(sentences)])
    run_cli("lm", "build", text, "-o", root / "lm", "--order", "2")
    assert sorted(p.name for p in (root / "lm").iterdir()) == ["en.arpa", "en.bin"]
    return SimpleNamespace(root=root, model=root / "m", test=test, langs=langs, lm=root / "lm")


def test_lm_beam_search_changes_only_the_language_it_is_given_for(lm_world, tmp_path):
    w = lm_world
    base = [w.test, "--model", w.model, "--mode", "oracle"]
    greedy = decode(tmp_path / "greedy.jsonl", *base)
    beam = decode(tmp_path / "beam.jsonl", *base, "--decoder", "beam")
    fused = decode(tmp_path / "lm.jsonl", *base, "--lm", f"en={w.lm / 'en.arpa'}", "--lm-alpha", "2")
    assert meta(tmp_path / "greedy.jsonl")["decoder"] == "greedy"
    assert meta(tmp_path / "beam.jsonl")["decoder"] == "beam"
    assert meta(tmp_path / "lm.jsonl")["decoder"] == "beam"  # --lm implies beam search
    assert {i: r["lang"] for i, r in fused.items()} == w.langs
    english = [i for i, code in w.langs.items() if code == "en"]
    german = [i for i, code in w.langs.items() if code == "de"]
    # German has no LM: its beam search is the plain one
    assert {i: fused[i]["text"] for i in german} == {i: beam[i]["text"] for i in german}
    # English: the LM moves the search to its words
    lm_words = {"abba", "baab"}

    def oov(rows):
        return sum(word not in lm_words for i in english for word in rows[i]["text"].split())

    assert {i: fused[i]["text"] for i in english} != {i: beam[i]["text"] for i in english}
    assert oov(fused) < oov(beam), ({i: beam[i]["text"] for i in english}, {i: fused[i]["text"] for i in english})
    assert any(word in lm_words for i in english for word in fused[i]["text"].split())
    assert not any(word in lm_words for i in english for word in beam[i]["text"].split())
    assert greedy.keys() == beam.keys() == fused.keys()


def test_the_same_lm_as_arpa_and_as_binary_decodes_alike(lm_world, tmp_path):
    w = lm_world
    base = [w.test, "--model", w.model, "--mode", "oracle", "--lm-alpha", "2"]
    arpa = decode_ok(tmp_path / "arpa.jsonl", *base, "--lm", f"en={w.lm / 'en.arpa'}")
    binary = decode_ok(tmp_path / "bin.jsonl", *base, "--lm", f"en={w.lm / 'en.bin'}")
    assert {i: r["text"] for i, r in binary.items()} == {i: r["text"] for i, r in arpa.items()}


# --- 3. beam search for character-scored languages -------------------------------------------

CHAR_VOCABS = {
    "en": VOCAB[:6],
    "ja": SPECIALS + ["今", "日", "は", "本", "語", "a"],  # with a Latin letter (code-switching)
    "ko": SPECIALS + ["한", "국", "어", "문", "장"],
}


@pytest.fixture(scope="module")
def char_model(tmp_path_factory) -> Path:
    """HLoRA over en, ja, ko with sharp CTC heads (x100: one path dominates, so beam search without an
    LM has nothing to add to the best path) that never emit <unk>."""
    config = ModelConfig(
        "hlora", BackboneRef("whisper", config=TINY["whisper"]), list(CHAR_VOCABS), vocabs=dict(CHAR_VOCABS), k=2
    )
    model = build_model(config)
    randomize_adapters(model, seed=3, scale=0.3)
    with torch.no_grad():
        for head in model.readout.heads:
            head.weight.mul_(100)
            head.bias.mul_(100)
            head.weight[2].zero_()  # <unk>
            head.bias[2] = -1e4
    return save_model(model, tmp_path_factory.mktemp("chars") / "m")


@pytest.mark.parametrize("lang", ["ja", "ko"])
def test_beam_without_lm_gives_the_greedy_text_in_character_scored_languages(world, char_model, tmp_path, lang):
    base = [*world.wavs, "--model", char_model, "--mode", "oracle", "--lang", lang]
    greedy = decode(tmp_path / "greedy.jsonl", *base)
    beam = decode(tmp_path / "beam.jsonl", *base, "--decoder", "beam")
    assert {i: r["text"] for i, r in beam.items()} == {i: r["text"] for i, r in greedy.items()}
    chars = [c for r in greedy.values() for c in r["text"].split()]
    native = [t for t in CHAR_VOCABS[lang][3:] if not t.isascii()]
    assert sum(c in native for c in chars) >= 5, greedy  # the texts are in the language's script
    for r in beam.values():  # spaced as CER references are: one character per unit
        assert all(len(unit) == 1 or unit.isascii() for unit in r["text"].split()), r["text"]
        assert "".join(w["word"] for w in r.get("words", [])) == r["text"].replace(" ", "")


def _one_hot(vocab: list[str], tokens: list[str]) -> np.ndarray:
    """Log-probs of one certain path: each token for one frame, then a blank frame."""
    frames = []
    for tok in tokens:
        for idx in (vocab.index(tok), 0):
            p = np.full(len(vocab), 1e-6)
            p[idx] = 1.0
            frames.append(p / p.sum())
    return np.log(np.array(frames)).astype(np.float32)


@pytest.mark.parametrize(
    "lang, vocab, tokens",
    [
        ("en", SPECIALS + ["a", "b"], ["a", "<unk>", "b", "|", "a"]),  # text: greedy 'ab a', beam 'a b a'
        ("ja", CHAR_VOCABS["ja"], ["語", "a", "<unk>", "a"]),  # text: greedy '語 aa', beam '語 a a'
        ("ja", CHAR_VOCABS["ja"], ["語", "a"]),  # words: greedy 語, a; beam 語a
    ],
    ids=["en-unk", "ja-unk", "ja-latin-after-character"],
)
def test_beam_without_lm_on_certain_posteriors_is_greedy_decoding(lang, vocab, tokens):
    """One path has all the probability: beam search without an LM must read it as greedy does."""
    from hlora_cli.infer.ctc_beam import BeamDecoder
    from hlora_cli.model.ctc_decoding import greedy_hypothesis

    log_probs = _one_hot(vocab, tokens)
    greedy, beam = greedy_hypothesis(log_probs, vocab, lang, 50.0), BeamDecoder(vocab, lang)(log_probs, 50.0)
    assert beam.text == greedy.text
    assert [w for w, _, _ in beam.words] == [w for w, _, _ in greedy.words]


# --- 4. long recordings: two-stage and oracle -------------------------------------------------

WINDOW, OVERLAP = 2.0, 0.5


@pytest.fixture(scope="module")
def long_recording(world) -> tuple[Path, np.ndarray]:
    audio = np.concatenate([clip(i, s) for i, s in enumerate(SECONDS)])  # 5.7 s, windows of 2 s
    path = world.root / "long.wav"
    sf.write(str(path), audio, SR, subtype="FLOAT")
    return path, audio


def _window_average(tmp_path: Path, audio: np.ndarray, model: Path) -> tuple[dict[str, float], list[str]]:
    """The duration-weighted mean of `model`'s LID posteriors over the recording's windows, each
    window identified on its own by `hlora lid`; and each window's language."""
    from hlora_cli.infer.long_audio import windows

    wins = windows(0, len(audio) / SR, WINDOW, OVERLAP)
    assert len(wins) >= 3
    paths = []
    for w in wins:
        paths.append(tmp_path / f"w{w.index}.wav")
        sf.write(str(paths[-1]), audio[int(round(w.start * SR)) : int(round(w.end * SR))], SR, subtype="FLOAT")
    run_cli("lid", *paths, "--model", model, "-o", tmp_path / "windows.jsonl")
    rows = read(tmp_path / "windows.jsonl")
    total = sum(w.end - w.start for w in wins)
    mean = {
        code: sum((w.end - w.start) * rows[f"w{w.index}"]["lang_probs"][code] for w in wins) / total for code in LANGS
    }
    return mean, [rows[f"w{w.index}"]["lang"] for w in wins]


def _one_result(out: Path, duration: float) -> dict:
    rows = read(out)
    assert list(rows) == ["long"]
    assert meta(out)["audio_seconds"] == pytest.approx(duration, abs=1e-3)
    r = rows["long"]
    assert sum(r["lang_probs"].values()) == pytest.approx(1, abs=1e-3)
    starts = [w["start"] for w in r.get("words", [])]
    assert starts and starts == sorted(starts), r
    return r


def test_long_recording_two_stage_takes_the_first_stage_average_over_windows(world, long_recording, tmp_path):
    path, audio = long_recording
    duration = len(audio) / SR
    windowing = ["--window", WINDOW, "--overlap", OVERLAP]
    out = tmp_path / "two.jsonl"
    run_cli(
        "decode",
        path,
        "--model",
        world.second,
        "--mode",
        "two-stage",
        "--lid-model",
        world.first,
        *windowing,
        "-o",
        out,
    )
    r = _one_result(out, duration)
    mean, per_window = _window_average(tmp_path, audio, world.first)
    assert r["lang_probs"] == pytest.approx(mean, abs=2e-3)
    assert r["lang"] == max(mean, key=mean.get)
    assert len(set(per_window)) >= 2, per_window  # the windows disagree: the average decides
    # and the text is oracle decoding of every window with that language
    oracle = tmp_path / "oracle.jsonl"
    run_cli("decode", path, "--model", world.second, "--mode", "oracle", "--lang", r["lang"], *windowing, "-o", oracle)
    assert read(oracle)["long"]["text"] == r["text"] and read(oracle)["long"]["lang"] == r["lang"]


def test_long_recording_oracle_keeps_the_given_language(world, long_recording, tmp_path):
    path, audio = long_recording
    duration = len(audio) / SR
    windowing = ["--window", WINDOW, "--overlap", OVERLAP]
    mean, _ = _window_average(tmp_path, audio, world.hlora)
    given = min(mean, key=mean.get)  # the language the model's own LID likes least
    out = tmp_path / "oracle.jsonl"
    run_cli("decode", path, "--model", world.hlora, "--mode", "oracle", "--lang", given, *windowing, "-o", out)
    r = _one_result(out, duration)
    assert r["lang"] == given != max(mean, key=mean.get)
    assert r["lang_probs"] == pytest.approx(mean, abs=2e-3)  # the model's LID, reported beside it
    # single pass decides the recording's language from the same average
    single = tmp_path / "single.jsonl"
    run_cli("decode", path, "--model", world.hlora, *windowing, "-o", single)
    assert _one_result(single, duration)["lang"] == max(mean, key=mean.get)


@pytest.mark.parametrize("duration, window, overlap", [(5.7, WINDOW, OVERLAP), (61.3, 25.0, 2.01)])
def test_stitch_takes_each_frame_from_one_window_whatever_the_window_options(duration, window, overlap):
    """As tests/infer/test_long_audio.py checks for 25 s windows with 2 s overlap: every window's
    "log-probs" are the absolute frame numbers, so the stitched frames must be 0, 1, 2, ... once each."""
    from hlora_cli.infer.long_audio import stitch, windows

    fps = 50.0
    parts = []
    for w in windows(0, duration, window, overlap):
        parts.append((w, np.arange(round(w.start * fps), round(w.end * fps), dtype=np.float32)[:, None]))
    np.testing.assert_array_equal(stitch(parts, fps)[:, 0], np.arange(round(duration * fps)))


def test_windowed_decoding_times_stay_within_the_recording(world, long_recording, tmp_path):
    path, audio = long_recording
    duration = len(audio) / SR
    out = tmp_path / "single.jsonl"
    words = decode_ok(out, path, "--model", world.hlora, "--window", WINDOW, "--overlap", OVERLAP)["long"].get(
        "words", []
    )
    precondition(len(words) >= 3, words)
    assert max(w["end"] for w in words) <= duration + 0.02, words[-3:]  # one 20 ms frame of slack


# --- 5. `hlora backbone import-ct2` errors ----------------------------------------------------


def _ct2_dir(path: Path, model_bin: bytes, config: str = "{}") -> Path:
    path.mkdir(parents=True)
    (path / "model.bin").write_bytes(model_bin)
    (path / "config.json").write_text(config)
    (path / "tokenizer.json").write_text("{}")
    return path


def _ct2_string(s: str) -> bytes:
    raw = s.encode() + b"\0"
    return struct.pack("<H", len(raw)) + raw


# format version 6, spec name and revision, no variables, no aliases
EMPTY_CT2 = struct.pack("<I", 6) + _ct2_string("WhisperSpec") + struct.pack("<III", 3, 0, 0)


@pytest.mark.parametrize(
    "case, message",
    [
        (
            "missing",
            "{src}/model.bin: missing; a CTranslate2 Whisper directory has model.bin, config.json, tokenizer.json",
        ),
        ("version5", "{src}/model.bin: CTranslate2 model.bin format version 5; only version 6 is supported"),
    ],
)
def test_import_ct2_of_a_missing_or_invalid_directory_is_one_line(tmp_path, monkeypatch, capsys, case, message):
    src = tmp_path / "nowhere" if case == "missing" else _ct2_dir(tmp_path / "ct2", struct.pack("<I", 5))
    out = tmp_path / "hf"
    code, err = entry(monkeypatch, capsys, "backbone", "import-ct2", src, out)
    assert code == 2
    assert err.splitlines() == ["error: " + message.format(src=src)]
    assert not out.exists()


def test_import_ct2_of_a_model_without_layers_names_the_file(tmp_path, monkeypatch, capsys):
    src = _ct2_dir(tmp_path / "ct2", EMPTY_CT2)
    code, err = entry(monkeypatch, capsys, "backbone", "import-ct2", src, tmp_path / "hf")
    assert code == 2 and len(err.splitlines()) == 1 and err.startswith("error: ")
    assert str(src) in err, err


def test_import_ct2_with_a_config_that_is_not_json_is_one_line(tmp_path, monkeypatch, capsys):
    src = _ct2_dir(tmp_path / "ct2", EMPTY_CT2, config="not json")
    code, err = entry(monkeypatch, capsys, "backbone", "import-ct2", src, tmp_path / "hf")
    assert code == 2, code
    assert len(err.splitlines()) == 1 and str(src / "config.json") in err, err


# --- 6. --whisper-languages -------------------------------------------------------------------


@pytest.mark.slow
def test_whisper_languages_restrict_the_zero_shot_lid(whisper_base, real_manifest, tmp_path):
    """An English and a Spanish clip of ../shared/data/real: restricted to de, both are de; restricted
    to en and es, each gets its own language, with posteriors over those two only."""
    rows = read_manifest(real_manifest)
    clips = [next(u for u in rows if u.lang == code) for code in ("en", "es")]
    manifest = write_manifest(tmp_path / "two.jsonl", clips)
    out = {}
    for languages in ("de", "en,es"):
        out[languages] = tmp_path / f"{languages.replace(',', '_')}.jsonl"
        run_cli("decode", manifest, "--whisper", whisper_base, "--whisper-languages", languages, "-o", out[languages])
    only_de = read(out["de"])
    assert {i: (r["lang"], r["lang_probs"]) for i, r in only_de.items()} == {u.id: ("de", {"de": 1.0}) for u in clips}
    en_es = read(out["en,es"])
    assert {i: r["lang"] for i, r in en_es.items()} == {u.id: u.lang for u in clips}
    for r in en_es.values():
        assert set(r["lang_probs"]) <= {"en", "es"} and sum(r["lang_probs"].values()) == pytest.approx(1, abs=1e-3)
    assert read(out["en,es"])[clips[0].id]["text"] != ""
    r = run_cli(
        "decode",
        manifest,
        "--whisper",
        whisper_base,
        "--whisper-languages",
        "de,xx",
        "-o",
        tmp_path / "x.jsonl",
        check=False,
    )
    assert (r.returncode, r.stderr) == (2, "error: Whisper has no language token for xx")
    assert not (tmp_path / "x.jsonl").exists()


# --- 7. --debug -------------------------------------------------------------------------------


def test_debug_shows_the_traceback_that_is_otherwise_one_line(tmp_path):
    missing = tmp_path / "nowhere"
    message = f"{missing}: not a model directory (RUN_DIR/best holds config.json and the weights)"
    plain = hlora("info", str(missing))
    assert plain.returncode == 2
    assert plain.stderr.splitlines() == [f"error: {message}"]
    debug = hlora("--debug", "info", str(missing))
    assert debug.returncode != 0
    lines = debug.stderr.strip().splitlines()
    assert lines[0] == "Traceback (most recent call last):"
    assert lines[-1] == f"hlora_cli.errors.HloraError: {message}"
    assert any("check_model_dir" in line for line in lines)  # the frames down to where it was raised
    assert "error: " not in debug.stderr


# --- 8. hlora lid --plot ----------------------------------------------------------------------


def test_lid_plot_writes_a_png_beside_the_accuracy(world, tmp_path):
    import matplotlib.image

    refs = {w.stem: LANGS[i % len(LANGS)] for i, w in enumerate(world.wavs)}
    manifest = with_langs(tmp_path / "refs.jsonl", world.wavs, refs)
    png = tmp_path / "lid.png"
    r = run_cli("lid", manifest, "--model", world.hlora, "-o", tmp_path / "lid.jsonl", "--plot", png)
    hyps = {i: row["lang"] for i, row in read(tmp_path / "lid.jsonl").items()}
    correct = sum(hyps[i] == refs[i] for i in refs)
    assert f"LID accuracy {correct}/7 = {100 * correct / 7:.1f}%" in r.stdout
    data = png.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and data[12:16] == b"IHDR"
    width, height = struct.unpack(">II", data[16:24])
    assert width >= 200 and height >= 200 and len(data) > 5000, (width, height, len(data))
    image = matplotlib.image.imread(str(png))
    assert image.shape[:2] == (height, width) and len(np.unique(image.reshape(-1, image.shape[-1]), axis=0)) > 10


def test_lid_plot_without_references_is_refused_and_writes_nothing(world, tmp_path):
    png = tmp_path / "lid.png"
    r = run_cli("lid", *world.wavs, "--model", world.hlora, "-o", tmp_path / "lid.jsonl", "--plot", png, check=False)
    assert r.returncode == 2
    assert r.stderr == f"error: --plot {png}: the inputs carry no reference language, so there is no confusion to plot"
    assert not png.exists() and not (tmp_path / "lid.jsonl").exists()
