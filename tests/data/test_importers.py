import json
from pathlib import Path

import pytest

from hlora_cli.data.importers import write_import
from hlora_cli.data.importers.cv import import_cv
from hlora_cli.data.importers.folder import import_folder
from hlora_cli.data.importers.kaldi import export_kaldi, import_kaldi, pipe_cache_path
from hlora_cli.data.importers.mlc_slm import import_mlc_slm
from hlora_cli.data.manifest import read_manifest
from hlora_cli.errors import HloraError
from tests.data.helpers import kaldi_dir, mlc_tree, write_audio


def test_kaldi_import_with_segments(tmp_path):
    d = kaldi_dir(tmp_path)
    result = import_kaldi(d, lang_from_id=True)
    summary = write_import(result, tmp_path / "m.jsonl", languages=["en", "de"])
    utts = read_manifest(tmp_path / "m.jsonl")
    assert [(u.id, u.lang, u.start, u.end, u.speaker, u.duration) for u in utts] == [
        ("en_u1", "en", 0.0, 1.5, "spkA", 1.5),
        ("en_u2", "en", 1.5, 4.0, "spkB", 2.5),
        ("de_u3", "de", 0.5, 2.5, "spkC", 2.0),
    ]
    assert summary.per_language == {"de": (1, 2.0 / 3600), "en": (2, 4.0 / 3600)}
    assert summary.rejected == {"no entry in segments": 1, "segment beyond the file's end": 1}
    rejected = [json.loads(line) for line in (tmp_path / "m.rejected.jsonl").read_text().splitlines()]
    assert {r["id"]: r["reason"] for r in rejected} == {
        "en_u5": "no entry in segments",
        "de_u4": "segment beyond the file's end: 9.00 s > 3.00 s",
    }


def test_kaldi_round_trip_is_lossless(tmp_path):
    d = kaldi_dir(tmp_path)
    (d / "utt2lang").write_text("en_u1 en-IN\nen_u2 en\nde_u3 de\nde_u4 de\nen_u5 en\n")
    write_import(import_kaldi(d), tmp_path / "m.jsonl")
    export_kaldi(read_manifest(tmp_path / "m.jsonl"), tmp_path / "back")
    write_import(import_kaldi(tmp_path / "back"), tmp_path / "m2.jsonl")
    by_id = lambda path: sorted(read_manifest(path), key=lambda u: u.id)  # noqa: E731  (Kaldi sorts by id)
    assert by_id(tmp_path / "m.jsonl") == by_id(tmp_path / "m2.jsonl")
    assert {u.lang for u in by_id(tmp_path / "m2.jsonl")} == {"en-IN", "en", "de"}
    export_kaldi(read_manifest(tmp_path / "m2.jsonl"), tmp_path / "back2")
    for name in ("wav.scp", "segments", "text", "utt2spk", "spk2utt", "utt2lang", "utt2dur"):
        assert (tmp_path / "back" / name).read_text() == (tmp_path / "back2" / name).read_text(), name
    assert (tmp_path / "back" / "segments").read_text().splitlines()[0] == "de_u3 rec2 0.5 2.5"


def test_kaldi_without_segments_and_with_lang(tmp_path):
    write_audio(tmp_path / "a.wav", 1.0)
    d = tmp_path / "d"
    d.mkdir()
    (d / "wav.scp").write_text(f"utt1 {tmp_path}/a.wav\n")
    (d / "text").write_text("utt1 bonjour\n")
    result = import_kaldi(d, lang="fr")
    assert [(u.id, u.lang, u.start, u.speaker) for u in result.utts] == [("utt1", "fr", None, None)]
    assert import_kaldi(d).rejected[0].reason == "no language (add utt2lang, --lang or --lang-from-id)"


def test_kaldi_pipe_refused_unless_allowed(tmp_path):
    d = kaldi_dir(tmp_path, pipe=True)
    with pytest.raises(HloraError, match=r"wav.scp:2: recording 'rec2' is a command pipe .* pass --allow-pipes"):
        import_kaldi(d, lang_from_id=True)
    (d / "wav.scp").write_text(f"rec1 {tmp_path}/wav/rec1.wav\nrec2 cat {tmp_path}/wav/rec2.wav |\n")
    result = import_kaldi(d, lang_from_id=True, allow_pipes=True, pipe_cache=tmp_path / "cache")
    cached = pipe_cache_path(tmp_path / "cache", "rec2", f"cat {tmp_path}/wav/rec2.wav |")
    assert result.utts[-1].audio == str(cached) and cached.parent == tmp_path / "cache"
    assert cached.read_bytes() == (tmp_path / "wav" / "rec2.wav").read_bytes()


def test_kaldi_pipe_cache_follows_the_command_and_stays_in_its_folder(tmp_path):
    d = kaldi_dir(tmp_path)
    write_audio(tmp_path / "wav" / "long.wav", 6.0)
    cache = tmp_path / "cache"
    (d / "segments").unlink()
    (d / "text").write_text("en_a short\n")
    (d / "wav.scp").write_text(f"en_a cat {tmp_path}/wav/rec1.wav |\n")
    assert import_kaldi(d, "en", allow_pipes=True, pipe_cache=cache).utts[0].audio.endswith(".wav")
    first = write_import(import_kaldi(d, "en", allow_pipes=True, pipe_cache=cache), tmp_path / "a.jsonl")
    assert first.per_language["en"] == (1, 4.0 / 3600)
    # wav.scp changed: the same recording id with another command is not the stale 4 s file
    (d / "wav.scp").write_text(f"en_a cat {tmp_path}/wav/long.wav |\n")
    second = write_import(import_kaldi(d, "en", allow_pipes=True, pipe_cache=cache), tmp_path / "b.jsonl")
    assert second.per_language["en"] == (1, 6.0 / 3600)
    # a recording id that climbs out of the cache, or an absolute one, still lands inside it
    (tmp_path / "escaped.wav").write_bytes(b"a file of the user's")
    for rec in ("../../escaped", "/abs/escaped", ".hidden"):
        (d / "text").write_text(f"{rec} short\n")
        (d / "wav.scp").write_text(f"{rec} cat {tmp_path}/wav/rec1.wav |\n")
        (audio,) = [u.audio for u in import_kaldi(d, "en", allow_pipes=True, pipe_cache=cache).utts]
        assert Path(audio).parent == cache and not Path(audio).name.startswith("."), audio
    assert (tmp_path / "escaped.wav").read_bytes() == b"a file of the user's"


def test_kaldi_missing_files_and_bad_lines(tmp_path):
    with pytest.raises(HloraError, match=r"wav.scp: missing; a Kaldi data dir needs wav.scp and text"):
        import_kaldi(tmp_path)
    d = kaldi_dir(tmp_path)
    (d / "segments").write_text("en_u1 rec1 0.0\n")
    with pytest.raises(HloraError, match=r"segments:1: expected '<utt-id> <recording-id> <start> <end>'"):
        import_kaldi(d)


def test_mlc_slm_tree(tmp_path):
    mlc_tree(tmp_path / "mlc")
    summary = write_import(import_mlc_slm(tmp_path / "mlc"), tmp_path / "m.jsonl")
    utts = read_manifest(tmp_path / "m.jsonl")
    assert [(u.id, u.lang, u.start, u.end, u.speaker, u.text) for u in utts] == [
        (
            "English-American-0517_007-A-000050-000225",
            "en-US",
            0.5,
            2.25,
            "English-American-0517_007-A",
            "Hello, how are you?",
        ),
        (
            "English-American-0517_007-B-000240-000590",
            "en-US",
            2.4,
            5.9,
            "English-American-0517_007-B",
            "I'm fine, thanks.",
        ),
        ("Japanese-0011_002-O1-000000-000180", "ja", 0.0, 1.8, "Japanese-0011_002-O1", "こんにちは。"),
        ("Japanese-0011_002-O2-000190-000395", "ja", 1.9, 3.95, "Japanese-0011_002-O2", "元気ですか"),
    ]
    assert summary.total[0] == 4 and summary.rejected == {}
    # segments are virtual: rows point into the long recording
    assert utts[0].audio.endswith("English/American/0517_007.wav")


def test_mlc_slm_strict_errors(tmp_path):
    mlc_tree(tmp_path / "mlc")
    (tmp_path / "mlc" / "Japanese" / "0011_002.txt").write_text("0.00 1.80 O1 ok\n1.9 oops\n", encoding="utf-8")
    with pytest.raises(HloraError, match=r"0011_002.txt:2: expected 'START END SPEAKER TEXT'"):
        import_mlc_slm(tmp_path / "mlc")
    (tmp_path / "mlc" / "Japanese" / "0011_002.txt").write_text("1.x 2.0 O1 ok\n", encoding="utf-8")
    with pytest.raises(HloraError, match=r"0011_002.txt:1: START and END must be seconds"):
        import_mlc_slm(tmp_path / "mlc")
    (tmp_path / "mlc" / "Japanese" / "0011_002.txt").write_text("2.0 1.0 O1 ok\n", encoding="utf-8")
    with pytest.raises(
        HloraError, match=r"0011_002.txt:1: segment from 2.00 s to 1.00 s is empty or starts before 0 s"
    ):
        import_mlc_slm(tmp_path / "mlc")
    (tmp_path / "mlc" / "Japanese" / "0011_002.txt").unlink()
    write_audio(tmp_path / "mlc" / "Klingon" / "x.wav", 1.0)
    (tmp_path / "mlc" / "Klingon" / "x.txt").write_text("0 1 A qapla\n")
    with pytest.raises(HloraError, match=r"x.txt: cannot tell its language: expected it below a folder named one of"):
        import_mlc_slm(tmp_path / "mlc")
    (tmp_path / "empty").mkdir()
    with pytest.raises(HloraError, match=r"no transcript \(.txt\) files found"):
        import_mlc_slm(tmp_path / "empty")


def test_common_voice_tsv(tmp_path):
    write_audio(tmp_path / "cv" / "clips" / "common_voice_de_1.mp3", 1.0, sr=48000)
    write_audio(tmp_path / "cv" / "clips" / "common_voice_de_2.mp3", 1.0, sr=48000)
    (tmp_path / "cv" / "train.tsv").write_text(
        "client_id\tpath\tsentence\tup_votes\tdown_votes\tage\tgender\taccents\tlocale\tsegment\n"
        'c1\tcommon_voice_de_1.mp3\t"Guten Morgen", sagte er.\t2\t0\t\t\t\tde\t\n'
        "c2\tcommon_voice_de_2.mp3\t\t2\t0\t\t\t\tde\t\n"
        "c3\tcommon_voice_de_3.mp3\tFehlt.\t2\t0\t\t\t\tde\t\n"
    )
    summary = write_import(import_cv(tmp_path / "cv"), tmp_path / "m.jsonl")
    utts = read_manifest(tmp_path / "m.jsonl")
    assert [(u.id, u.lang, u.text, u.speaker) for u in utts] == [
        ("common_voice_de_1", "de", '"Guten Morgen", sagte er.', "c1")
    ]
    assert summary.rejected == {"empty text": 1, "unreadable audio": 1}


def test_folder(tmp_path):
    write_audio(tmp_path / "f" / "a.wav", 1.0)
    write_audio(tmp_path / "f" / "sub" / "b.flac", 1.0)
    write_audio(tmp_path / "f" / "c.wav", 1.0)
    (tmp_path / "f" / "a.txt").write_text("Hola  mundo\n")
    (tmp_path / "f" / "sub" / "b.txt").write_text("Adiós")
    result = import_folder(tmp_path / "f", "es")
    assert [(u.id, u.text) for u in result.utts] == [("a", "Hola mundo"), ("sub-b", "Adiós")]
    assert [(r.utt["id"], r.reason) for r in result.rejected] == [("c", "no transcript: c.txt")]
