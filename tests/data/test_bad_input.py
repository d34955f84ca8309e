"""Bad input in the data layer: one clear line naming the file (and line), checked before the
work; nothing of the user's deleted or overwritten that the command was not asked to write."""

import json
import struct
import warnings

import numpy as np
import pytest
import soundfile as sf

from hlora_cli.data.audio import TruncatedAudioWarning, audio_info, load_audio
from hlora_cli.data.features import WaveformFrontend
from hlora_cli.data.importers import write_import
from hlora_cli.data.importers.cv import import_cv
from hlora_cli.data.importers.folder import import_folder
from hlora_cli.data.importers.kaldi import export_kaldi, import_kaldi
from hlora_cli.data.importers.mlc_slm import import_mlc_slm
from hlora_cli.data.loader import Job, Segment, load_job
from hlora_cli.data.manifest import Utterance, read_manifest, validate, write_manifest
from hlora_cli.errors import HloraError
from hlora_cli.infer.inputs import collect_inputs
from tests.data.helpers import kaldi_dir, mlc_tree, write_audio
from tests.helpers import hlora

GOOD = '{"id": "a", "audio": "a.wav", "lang": "en", "text": "x"}'


# --- 1. manifest values ----------------------------------------------------------------------
@pytest.mark.parametrize(
    "line, message",
    [
        ('{"id": "", "audio": "a.wav", "lang": "en", "text": "x"}', "m.jsonl:2: id is empty"),
        ('{"id": "b c", "audio": "a.wav", "lang": "en", "text": "x"}', "m.jsonl:2: id 'b c' contains whitespace"),
        ('{"id": "b\\tc", "audio": "a.wav", "lang": "en", "text": "x"}', "m.jsonl:2: id 'b\\tc' contains whitespace"),
        ('{"id": "b", "audio": "a.wav", "lang": "en", "text": null}', "m.jsonl:2: text must be a string, got null"),
        ('{"id": "b", "audio": "a.wav", "lang": null, "text": "x"}', "m.jsonl:2: lang must be a string, got null"),
        ('{"id": "b", "audio": "a.wav", "lang": 5, "text": "x"}', "m.jsonl:2: lang must be a string, got 5"),
        ('{"id": 7, "audio": "a.wav", "lang": "en", "text": "x"}', "m.jsonl:2: id must be a string, got 7"),
        ('{"id": "b", "audio": "", "lang": "en", "text": "x"}', "m.jsonl:2: audio is empty"),
        ('{"id": "b", "audio": "a.wav", "lang": "en", "text": "x", "speaker": 3}', "speaker must be a string"),
        ('{"id": "b", "audio": "a.wav", "lang": "en", "text": "x", "start": "soon"}', "start must be a number"),
        ('{"id": "b", "audio": "a.wav", "lang": "en", "text": "x", "end": NaN}', "end must be a finite number"),
        ('{"id": "b", "audio": "a.wav", "lang": "xx", "text": "x"}', "m.jsonl:2: 'xx' is not a language code"),
    ],
)
def test_manifest_rejects_bad_ids_and_null_or_non_string_values(tmp_path, line, message):
    path = tmp_path / "m.jsonl"
    path.write_text(f"{GOOD}\n{line}\n")
    with pytest.raises(HloraError) as e:
        read_manifest(path)
    assert message in str(e.value) and "\n" not in str(e.value)


def test_manifest_folds_language_case_and_keeps_null_optional_fields(tmp_path):
    path = tmp_path / "m.jsonl"
    path.write_text('{"id": "a", "audio": "a.wav", "lang": "EN-IN", "text": "x", "speaker": null, "start": 1}\n')
    [u] = read_manifest(path)
    assert (u.lang, u.speaker, u.start) == ("en-IN", None, 1.0)


def test_manifest_line_separator_inside_text_round_trips(tmp_path):
    # json.dumps(ensure_ascii=False) writes U+2028 raw; str.splitlines() used to cut the line there
    utts = [Utterance("a", str(tmp_path / "a.wav"), "en", "one\u2028two\x85three")]
    write_manifest(tmp_path / "m.jsonl", utts)
    assert read_manifest(tmp_path / "m.jsonl")[0].text == "one\u2028two\x85three"


def test_validate_rejects_bad_ids_and_language_codes_of_imported_rows(tmp_path):
    a = write_audio(tmp_path / "a.wav", 1.0)
    utts = [
        Utterance("a b", str(a), "en", "x"),
        Utterance("", str(a), "en", "x"),
        Utterance("k", str(a), "klingon", "x"),
        Utterance("e", str(a), "EN", "x"),
    ]
    ok, rejected = validate(utts)
    assert [(u.id, u.lang) for u in ok] == [("e", "en")]
    assert [r.reason for r in rejected] == [
        "bad id: id 'a b' contains whitespace",
        "bad id: id is empty",
        "not a language code: klingon",
    ]


# --- 2. export-kaldi writes a whole, consistent directory -------------------------------------
def test_export_kaldi_removes_its_stale_files_and_keeps_the_users(tmp_path):
    write_import(import_kaldi(kaldi_dir(tmp_path), lang_from_id=True), tmp_path / "seg.jsonl")
    out = tmp_path / "kaldi"
    export_kaldi(read_manifest(tmp_path / "seg.jsonl"), out)
    assert (out / "segments").exists() and (out / "utt2dur").exists()
    (out / "notes.txt").write_text("mine")
    (out / "feats.scp").write_text("en_u1 feats.ark:12\n")
    # a second export of whole files without durations: no segments, no utt2dur
    utts = [Utterance(f"fr_{i}", str(write_audio(tmp_path / f"w{i}.wav", 1.0)), "fr", f"phrase {i}") for i in range(3)]
    done = export_kaldi(utts, out)
    assert sorted(p.name for p in done.removed) == ["segments", "utt2dur"]
    assert [p.name for p in done.unmatched] == ["feats.scp"]
    assert not (out / "segments").exists() and not (out / "utt2dur").exists()
    assert (out / "notes.txt").read_text() == "mine" and (out / "feats.scp").exists()
    again = import_kaldi(out)
    assert [(u.id, u.lang, u.text) for u in again.utts] == [(u.id, u.lang, u.text) for u in utts]
    assert again.rejected == []


def test_export_kaldi_keeps_recordings_shared_by_whole_file_rows(tmp_path):
    a = write_audio(tmp_path / "a.wav", 1.0)
    export_kaldi([Utterance("u1", str(a), "en", "one"), Utterance("u2", str(a), "de", "eins")], tmp_path / "k")
    assert {u.id for u in import_kaldi(tmp_path / "k").utts} == {"u1", "u2"}


def test_export_kaldi_refuses_what_kaldi_tables_cannot_hold(tmp_path):
    a = write_audio(tmp_path / "a.wav", 1.0)
    with pytest.raises(HloraError, match=r"utterance 'u1': speaker 'Jane Doe' is empty or contains whitespace"):
        export_kaldi([Utterance("u1", str(a), "en", "one", speaker="Jane Doe")], tmp_path / "k")
    with pytest.raises(HloraError, match=r"utterance id 'u1' appears twice"):
        export_kaldi([Utterance("u1", str(a), "en", "one"), Utterance("u1", str(a), "en", "two")], tmp_path / "k")
    assert not (tmp_path / "k").exists()


def test_export_kaldi_into_a_file_is_a_one_line_error(tmp_path):
    write_manifest(tmp_path / "m.jsonl", [Utterance("u1", str(write_audio(tmp_path / "a.wav", 1.0)), "en", "x")])
    (tmp_path / "taken").write_text("keep me")
    r = hlora("prepare", "export-kaldi", str(tmp_path / "m.jsonl"), str(tmp_path / "taken"))
    assert r.returncode == 2 and r.stderr.strip().splitlines() == [
        f"error: {tmp_path}/taken: is a file, not a directory; give a directory for the Kaldi data"
    ]
    assert (tmp_path / "taken").read_text() == "keep me"


# --- 3. a failing pipe skips its recording ----------------------------------------------------
def test_kaldi_failing_pipe_is_skipped_and_named(tmp_path):
    d = kaldi_dir(tmp_path)
    (d / "wav.scp").write_text(f"rec1 {tmp_path}/wav/rec1.wav\nrec2 sh -c 'echo no such tape >&2; exit 3' |\n")
    result = import_kaldi(d, lang_from_id=True, allow_pipes=True, pipe_cache=tmp_path / "cache")
    assert [u.id for u in result.utts] == ["en_u1", "en_u2"]
    reasons = {r.utt["id"]: r.reason for r in result.rejected}
    assert reasons["de_u3"] == reasons["de_u4"] == f"pipe failed: {d}/wav.scp:2: recording 'rec2': no such tape"
    assert not (tmp_path / "cache" / "rec2.wav").exists()
    summary = write_import(result, tmp_path / "m.jsonl")
    assert summary.rejected["pipe failed"] == 2 and summary.total[0] == 2


def test_kaldi_bad_entries_are_refused_before_any_pipe_runs(tmp_path):
    d = kaldi_dir(tmp_path)
    (d / "wav.scp").write_text(f"rec1 cp {tmp_path}/wav/rec1.wav /dev/stdout |\nrec2 {tmp_path}/wav/rec2.wav x\n")
    with pytest.raises(HloraError, match=r"wav.scp:2: recording 'rec2' has extra fields after the path"):
        import_kaldi(d, lang_from_id=True, allow_pipes=True, pipe_cache=tmp_path / "cache")
    assert not (tmp_path / "cache").exists()
    (d / "segments").write_text("en_u1 rec1 0.00 1.50\nen_u2 rec1 nan 4.00\n")
    with pytest.raises(HloraError, match=r"segments:2: 'en_u2' has non-numeric times nan 4.00"):
        import_kaldi(d, lang_from_id=True, allow_pipes=True, pipe_cache=tmp_path / "cache")
    assert not (tmp_path / "cache").exists()


# --- 4. transcripts that are not UTF-8 ----------------------------------------------------------
def test_non_utf8_transcripts_name_file_and_line(tmp_path):
    write_audio(tmp_path / "f" / "a.wav", 1.0)
    (tmp_path / "f" / "a.txt").write_bytes(b"ok\ncaf\xe9\n")
    with pytest.raises(HloraError, match=r"f/a.txt:2: not UTF-8 text \(byte 0xe9\)"):
        import_folder(tmp_path / "f", "fr")

    d = kaldi_dir(tmp_path / "k")
    (d / "text").write_bytes("en_u1 Hello\nen_u2 Grüße\n".encode("latin-1"))
    with pytest.raises(HloraError, match=r"data/text:2: not UTF-8 text \(byte 0xfc\)"):
        import_kaldi(d, lang_from_id=True)

    mlc_tree(tmp_path / "mlc")
    (tmp_path / "mlc" / "Japanese" / "0011_002.txt").write_bytes("0 1 A ok\n1 2 B こんにちは\n".encode("shift_jis"))
    with pytest.raises(HloraError, match=r"0011_002.txt:2: not UTF-8 text"):
        import_mlc_slm(tmp_path / "mlc")

    (tmp_path / "cv").mkdir()
    (tmp_path / "cv" / "train.tsv").write_bytes(b"path\tsentence\tlocale\na.mp3\tok\tde\nb.mp3\tsch\xf6n\tde\n")
    with pytest.raises(HloraError, match=r"train.tsv:3: not UTF-8 text \(byte 0xf6\)"):
        import_cv(tmp_path / "cv")


def test_non_utf8_transcript_is_one_line_from_the_cli(tmp_path):
    write_audio(tmp_path / "f" / "a.wav", 1.0)
    (tmp_path / "f" / "a.txt").write_bytes(b"caf\xe9")
    r = hlora("prepare", "folder", str(tmp_path / "f"), "--lang", "fr", "-o", str(tmp_path / "m.jsonl"))
    assert r.returncode == 2 and len(r.stderr.strip().splitlines()) == 1
    assert f"{tmp_path}/f/a.txt:1: not UTF-8 text" in r.stderr and not (tmp_path / "m.jsonl").exists()


# --- 5. Common Voice and Kaldi messages ----------------------------------------------------------
def test_common_voice_empty_sentence_is_reported_as_empty_not_as_duplicate(tmp_path):
    write_audio(tmp_path / "cv" / "clips" / "a.mp3", 1.0, sr=48000)
    write_audio(tmp_path / "cv" / "clips" / "b.mp3", 1.0, sr=48000)
    (tmp_path / "cv" / "train.tsv").write_text(
        "client_id\tpath\tsentence\tlocale\n"
        "c1\ta.mp3\tHallo\tde\n"
        "c2\ta.mp3\t\tde\n"  # the same clip again, without a sentence
        "c3\tb.mp3\t  \tDE\n"
        "\t\t\t\n",
        encoding="utf-8",
    )
    summary = write_import(import_cv(tmp_path / "cv"), tmp_path / "m.jsonl")
    assert [(u.id, u.lang, u.text) for u in read_manifest(tmp_path / "m.jsonl")] == [("a", "de", "Hallo")]
    rejected = [json.loads(x) for x in (tmp_path / "m.rejected.jsonl").read_text().splitlines()]
    assert [r["reason"] for r in rejected] == [
        f"no clip path: {tmp_path}/cv/train.tsv:5",
        "empty text",
        "empty text",
    ]
    assert summary.rejected == {"no clip path": 1, "empty text": 2}


def test_common_voice_tsv_with_a_byte_order_mark(tmp_path):
    write_audio(tmp_path / "cv" / "clips" / "a.mp3", 1.0, sr=48000)
    (tmp_path / "cv" / "train.tsv").write_text("\ufeffpath\tsentence\tlocale\na.mp3\tHallo\tde\n", encoding="utf-8")
    assert [(u.id, u.text) for u in import_cv(tmp_path / "cv").utts] == [("a", "Hallo")]


def test_kaldi_ark_entries_are_named_as_unsupported_and_skipped(tmp_path):
    d = kaldi_dir(tmp_path)
    (d / "wav.scp").write_text(f"rec1 {tmp_path}/wav/rec1.wav\nrec2 /data/wav.ark:1234\n")
    result = import_kaldi(d, lang_from_id=True)
    assert [u.id for u in result.utts] == ["en_u1", "en_u2"]
    reason = {r.utt["id"]: r.reason for r in result.rejected}["de_u3"]
    assert reason.startswith(f"Kaldi ark entry not supported: {d}/wav.scp:2: recording 'rec2' is '/data/wav.ark:1234'")
    assert "audio file not found" not in reason


# --- 6. one id from two files ---------------------------------------------------------------------
def test_same_stem_in_two_formats_names_both_paths(tmp_path):
    f = tmp_path / "f"
    write_audio(f / "x.wav", 1.0)
    write_audio(f / "x.flac", 1.0)
    (f / "x.txt").write_text("hola")
    with pytest.raises(HloraError) as e:
        import_folder(f, "es")
    assert str(e.value) == (
        f"{f}: two audio files give the same utterance id: 'x' ({f}/x.flac and {f}/x.wav); keep one of each pair"
    )
    with pytest.raises(HloraError, match=rf"'x' \({f}/x.flac and {f}/x.wav\)"):
        collect_inputs([str(f)])
    write_audio(tmp_path / "g" / "x.wav", 1.0)
    with pytest.raises(HloraError) as e:
        collect_inputs([str(f / "x.wav"), str(tmp_path / "g" / "x.wav")])
    assert f"'x' ({f}/x.wav and {tmp_path}/g/x.wav)" in str(e.value)


# --- 7. language codes ----------------------------------------------------------------------------
def test_kaldi_language_codes_are_checked(tmp_path):
    d = kaldi_dir(tmp_path)
    with pytest.raises(HloraError, match=r"--lang: 'klingon' is not a language code"):
        import_kaldi(d, lang="klingon")
    (d / "utt2lang").write_text("en_u1 en\nen_u2 english\n")
    with pytest.raises(HloraError, match=r"utt2lang:2: 'english' is not a language code"):
        import_kaldi(d)
    (d / "utt2lang").unlink()
    (d / "text").write_text("en_u1 Hello\nxx_u2 General Kenobi!\n")
    (d / "segments").write_text("en_u1 rec1 0.00 1.50\nxx_u2 rec1 1.50 4.00\n")
    ok, rejected = validate(import_kaldi(d, lang_from_id=True).utts, check_audio=False)
    assert [u.id for u in ok] == ["en_u1"] and rejected[0].reason == "not a language code: xx"
    assert import_kaldi(d, lang="EN").utts[0].lang == "en"


def test_unknown_language_codes_are_one_line_errors_from_every_command(tmp_path):
    r = hlora("normalize", "--lang", "xx", "Hello")
    assert r.returncode == 2 and r.stderr.strip().splitlines() == [
        "error: 'xx' is not a language code: use ISO 639-1 (en) or ISO 639-3 (yue), optionally with a region "
        "(en-IN), or register a normalizer for it"
    ]
    assert hlora("normalize", "--lang", "EN", "Hello, World!").stdout == "hello world\n"
    (tmp_path / "m.jsonl").write_text('{"id": "a", "audio": "a.wav", "lang": "klingon", "text": "x"}\n')
    for args in (
        ["normalize", str(tmp_path / "m.jsonl"), "-o", str(tmp_path / "n.jsonl")],
        ["prepare", "vocab", str(tmp_path / "m.jsonl"), "-o", str(tmp_path / "v.json")],
        ["lm", "build", str(tmp_path / "m.jsonl"), "-o", str(tmp_path / "lm")],
    ):
        r = hlora(*args)
        assert r.returncode == 2 and len(r.stderr.strip().splitlines()) == 1, args
        assert f"{tmp_path}/m.jsonl:1: 'klingon' is not a language code" in r.stderr, args
    d = kaldi_dir(tmp_path / "k")
    r = hlora("prepare", "kaldi", str(d), "-o", str(tmp_path / "k.jsonl"), "--lang", "xx")
    assert r.returncode == 2 and "--lang: 'xx' is not a language code" in r.stderr
    r = hlora("prepare", "kaldi", str(d), "-o", str(tmp_path / "k.jsonl"), "--lang-from-id", "--languages", "en,zz")
    assert r.returncode == 2 and "--languages: 'zz' is not a language code" in r.stderr
    assert not (tmp_path / "k.jsonl").exists()


# --- 8. NaN and Inf samples ------------------------------------------------------------------------
@pytest.mark.parametrize("bad", [np.nan, np.inf])
def test_non_finite_samples_are_an_error_naming_the_file(tmp_path, bad):
    x = np.full(16000, 0.1, np.float32)
    x[1234] = bad
    sf.write(str(tmp_path / "n.wav"), x, 16000, subtype="FLOAT")
    with pytest.raises(HloraError, match=r"n.wav: has non-finite samples \(NaN or Inf\)"):
        load_audio(tmp_path / "n.wav")
    assert len(load_audio(tmp_path / "n.wav", 0.5, 1.0)) == 8000  # a segment without them reads
    good = write_audio(tmp_path / "g.wav", 1.0)
    frontend = WaveformFrontend(400, "hubert", do_normalize=False)
    loaded = load_job(Job("key", [Segment(str(good)), Segment(str(tmp_path / "n.wav"))]), frontend)
    assert loaded.key == "key" and loaded.kept == [0] and "n.wav: has non-finite samples" in loaded.failed[1]
    assert loaded.feats.values.shape == (1, 16000) and loaded.error is None


# --- 9. a WAV cut short ---------------------------------------------------------------------------
def test_truncated_wav_warns_with_both_lengths(tmp_path):
    path = write_audio(tmp_path / "t.wav", 1.0, subtype="PCM_16")
    data = path.read_bytes()
    path.write_bytes(data[: 44 + 16000])  # the header says 16000 frames, the file holds 8000
    with pytest.warns(TruncatedAudioWarning) as record:
        x = load_audio(path)
    assert len(x) == 8000 and len(record) == 1
    assert str(record[0].message) == (
        f"{path}: truncated audio: the header says 16000 frames (1.00 s), the file holds 8000 (0.50 s); "
        "decoding what is there"
    )
    info = audio_info(path)
    assert info.truncated and (info.header_frames, info.frames) == (16000, 8000)
    _, rejected = validate([Utterance("t", str(path), "en", "x")])
    assert rejected[0].reason == "truncated audio: the header says 1.00 s, the file holds 0.50 s"


def test_whole_and_streamed_wavs_do_not_warn(tmp_path):
    path = write_audio(tmp_path / "w.wav", 1.0, subtype="PCM_16")
    streamed = bytearray(path.read_bytes())
    streamed[4:8] = streamed[40:44] = struct.pack("<I", 0xFFFFFFFF)  # written to a pipe: length unknown
    (tmp_path / "s.wav").write_bytes(bytes(streamed))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert len(load_audio(path)) == len(load_audio(tmp_path / "s.wav")) == 16000
        assert not audio_info(tmp_path / "s.wav").truncated
