import json

import pytest

from hlora_cli.data.manifest import Utterance, read_manifest, validate, write_manifest
from hlora_cli.errors import HloraError
from tests.data.helpers import write_audio


def test_real_manifest_loads_as_it_is(real_manifest):
    utts = read_manifest(real_manifest)
    assert len(utts) == 20 and len({u.lang for u in utts}) == 8
    assert all(u.audio.startswith(str(real_manifest.parent.resolve())) for u in utts)
    ok, rejected = validate(utts, languages=["en", "es", "de", "fr", "it", "ja", "ko", "pt"])
    assert len(ok) == 20 and rejected == []
    assert all(0 < u.duration < 30 for u in ok)


def test_write_read_round_trip_with_relative_paths(tmp_path):
    audio = write_audio(tmp_path / "clips" / "a.wav", 1.0)
    utts = [Utterance("a", str(audio), "en-IN", "Hello.", start=0.1, end=0.9, speaker="s1", text_norm="hello")]
    write_manifest(tmp_path / "m.jsonl", utts)
    line = json.loads((tmp_path / "m.jsonl").read_text())
    assert line["audio"] == "clips/a.wav" and line["start"] == 0.1 and "duration" not in line
    assert read_manifest(tmp_path / "m.jsonl") == [
        Utterance("a", str(audio.resolve()), "en-IN", "Hello.", 0.1, 0.9, speaker="s1", text_norm="hello")
    ]


def test_validator_reasons(tmp_path):
    a = write_audio(tmp_path / "a.wav", 2.0)
    long = write_audio(tmp_path / "long.wav", 5.0)
    utts = [
        Utterance("u1", str(a), "en", "ok"),
        Utterance("u1", str(a), "en", "duplicate"),
        Utterance("u2", str(tmp_path / "missing.wav"), "en", "x"),
        Utterance("u3", str(a), "sw", "unknown language"),
        Utterance("u4", str(a), "de", "  "),
        Utterance("u5", str(long), "en", "too long"),
        Utterance("u6", str(a), "en-IN", "segment", start=0.5, end=1.5),
        Utterance("u7", str(a), "en", "beyond", start=1.0, end=3.0),
    ]
    ok, rejected = validate(utts, languages=["en", "de"], max_duration=4.0)
    assert [(u.id, u.duration) for u in ok] == [("u1", 2.0), ("u6", 1.0)]
    reasons = {r.utt.id: r.reason for r in rejected if r.utt.text != "ok"}
    assert reasons["u1"] == "duplicate id"
    assert reasons["u2"].startswith("unreadable audio: ") and "missing.wav: audio file not found" in reasons["u2"]
    assert reasons["u3"] == "unknown language: sw"
    assert reasons["u4"] == "empty text"
    assert reasons["u5"] == "over the maximum duration: 5.0 s > 4 s"
    assert reasons["u7"] == "segment beyond the file's end: 3.00 s > 2.00 s"


def test_malformed_lines_are_errors_naming_file_and_line(tmp_path):
    path = tmp_path / "m.jsonl"
    path.write_text('{"id": "a", "audio": "a.wav", "lang": "en", "text": "x"}\n{broken\n')
    with pytest.raises(HloraError, match=r"m.jsonl:2: not valid JSON"):
        read_manifest(path)
    path.write_text('{"id": "a", "audio": "a.wav", "text": "x"}\n')
    with pytest.raises(HloraError, match=r"m.jsonl:1: missing field\(s\) lang"):
        read_manifest(path)
    path.write_text('{"id": "a", "audio": "a.wav", "lang": "en", "text": "x", "txet": 1}\n')
    with pytest.raises(HloraError, match=r"m.jsonl:1: unknown field\(s\) txet"):
        read_manifest(path)
    with pytest.raises(HloraError, match=r"nothere.jsonl: manifest not found"):
        read_manifest(tmp_path / "nothere.jsonl")


def test_line_numbers_count_blank_lines_and_lines_that_join_into_valid_json_are_still_refused(tmp_path):
    row = '{"id": "%s", "audio": "a.wav", "lang": "%s", "text": "x"}'
    path = tmp_path / "m.jsonl"
    path.write_text("\n".join([row % ("a", "en"), "", "  ", row % ("b", "xx"), row % ("c", "en")]) + "\n")
    with pytest.raises(HloraError, match=r"m.jsonl:4: 'xx' is not a language code"):  # parsed all at once
        read_manifest(path)
    two = row % ("b", "en") + ", " + row % ("c", "en")  # two objects on one line: valid inside one array
    path.write_text("\n".join([row % ("a", "en"), "", two]) + "\n")
    with pytest.raises(HloraError, match=r"m.jsonl:3: not valid JSON"):
        read_manifest(path)
    split = ['{"id": "a", "audio": "a.wav",', '"lang": "en", "text": "x"}']  # one object over two lines
    path.write_text("\n".join(split) + "\n")
    with pytest.raises(HloraError, match=r"m.jsonl:1: not valid JSON"):
        read_manifest(path)
    path.write_text("\n".join([row % ("a", "en"), "", row % ("b", "de")]) + "\n")
    assert [(u.id, u.lang, u.audio) for u in read_manifest(path)] == [
        ("a", "en", str(tmp_path / "a.wav")),
        ("b", "de", str(tmp_path / "a.wav")),
    ]
