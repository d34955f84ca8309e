"""lhotse manifests in and out, through lhotse itself: a round trip keeps every row, segments of a
longer recording are read in place, and what hlora cannot read is rejected with its reason."""

import gzip
import json

import numpy as np
import pytest

from hlora_cli.data.audio import load_audio
from hlora_cli.data.importers.lhotse_manifests import export_lhotse, import_lhotse
from hlora_cli.data.manifest import Utterance, read_manifest, write_manifest
from hlora_cli.errors import HloraError
from tests.data.helpers import write_audio
from tests.helpers import run_main_output

lhotse = pytest.importorskip("lhotse")


def corpus(tmp_path):
    """A 3 s recording cut into two utterances, and a file that is one utterance."""
    long = write_audio(tmp_path / "audio" / "talk.wav", 3.0)
    short = write_audio(tmp_path / "audio" / "clip.flac", 1.25)
    utts = [
        Utterance("talk-a", str(long), "en", "the first part", start=0.5, end=1.5, speaker="s1"),
        Utterance("talk-b", str(long), "de", "der zweite Teil", start=1.5, end=2.75, speaker="s1"),
        Utterance("clip", str(short), "fr", "un extrait", text_norm="un extrait"),
    ]
    return write_manifest(tmp_path / "in.jsonl", utts), utts


def test_round_trip_through_lhotse_keeps_every_row(tmp_path):
    manifest, utts = corpus(tmp_path)
    code, out, err = run_main_output("prepare", "to-lhotse", manifest, tmp_path / "lh")
    assert code == 0, err
    assert "wrote recordings.jsonl.gz, supervisions.jsonl.gz, cuts.jsonl.gz" in out
    recordings = lhotse.load_manifest(tmp_path / "lh" / "recordings.jsonl.gz")
    assert sorted(r.id for r in recordings) == ["clip", "talk"]
    assert recordings["talk"].duration == 3.0 and recordings["clip"].num_samples == 20000
    cuts = lhotse.load_manifest(tmp_path / "lh" / "cuts.jsonl.gz")
    by_sup = {c.supervisions[0].id: c for c in cuts}
    assert (by_sup["talk-b"].start, by_sup["talk-b"].duration) == (1.5, 1.25)
    assert by_sup["talk-b"].supervisions[0].language == "de"
    for sources in (["cuts.jsonl.gz"], ["recordings.jsonl.gz", "supervisions.jsonl.gz"]):
        back = tmp_path / f"back{len(sources)}.jsonl"
        code, out, err = run_main_output("prepare", "lhotse", *(tmp_path / "lh" / s for s in sources), "-o", back)
        assert code == 0, err
        rows = {u.id: u for u in read_manifest(back)}
        assert set(rows) == {"talk-a", "talk-b", "clip"}
        for u in utts:
            r = rows[u.id]
            assert (r.audio, r.lang, r.text, r.start, r.end, r.speaker) == (
                str(tmp_path / "audio" / ("talk.wav" if u.id != "clip" else "clip.flac")),
                u.lang,
                u.text,
                u.start,
                u.end,
                u.speaker,
            )
        assert rows["talk-b"].duration == 1.25 and rows["clip"].duration == 1.25
    # a segment row reads its part of the recording
    whole = load_audio(utts[0].audio)
    part = load_audio(rows["talk-b"].audio, rows["talk-b"].start, rows["talk-b"].end)
    assert np.array_equal(part, whole[24000:44000])


def lhotse_files(tmp_path, supervisions, recordings=None):
    rec = lhotse.Recording.from_file(write_audio(tmp_path / "a.wav", 2.0), recording_id="rec")
    recs = lhotse.RecordingSet.from_recordings(recordings or [rec])
    sups = lhotse.SupervisionSet.from_segments(supervisions)
    recs.to_file(tmp_path / "recs.jsonl.gz")
    sups.to_file(tmp_path / "sups.jsonl.gz")
    return [tmp_path / "recs.jsonl.gz", tmp_path / "sups.jsonl.gz"]


def sup(sid, start=0.0, duration=1.0, language="en", text="hello", recording="rec"):
    return lhotse.SupervisionSegment(sid, recording, start, duration, text=text, language=language)


def test_what_cannot_be_read_is_rejected_with_its_reason(tmp_path):
    paths = lhotse_files(
        tmp_path,
        [
            sup("ok", 0.5, 1.0),
            sup("whole", 0.0, 2.0),
            sup("past-end", 1.5, 1.0),
            sup("named", language="English"),
            sup("no-lang", language=None),
            sup("no-text", text=None),
            sup("elsewhere", recording="missing"),
        ],
    )
    result = import_lhotse(paths)
    assert [(u.id, u.start, u.end) for u in result.utts] == [("ok", 0.5, 1.5), ("whole", None, None)]
    reasons = {r.utt["id"]: r.reason for r in result.rejected}
    assert reasons == {
        "past-end": "segment: 1.5-2.5 s lies outside recording 'rec' (0-2 s)",
        "named": "language: 'English' is not a language code (map it: --lang-map 'English=xx')",
        "no-lang": "language: the row has none (give --lang)",
        "no-text": "text: the supervision has none",
        "elsewhere": f"recording: 'missing' is not in {paths[0]}",
    }
    # a name mapped to a code, or one language for every row
    assert "named" in {u.id for u in import_lhotse(paths, lang_map={"English": "en"}).utts}
    every = import_lhotse(paths, lang="de").utts
    assert {u.id for u in every} == {"ok", "whole", "named", "no-lang"} and {u.lang for u in every} == {"de"}


def test_sources_hlora_does_not_read_are_rejected(tmp_path):
    url = lhotse.Recording("web", [lhotse.audio.AudioSource("url", [0], "https://x/a.wav")], 16000, 16000, 1.0)
    stereo = lhotse.Recording.from_file(write_audio(tmp_path / "st.wav", 1.0, channels=2), recording_id="stereo")
    left = lhotse.SupervisionSegment("left", "stereo", 0, 1.0, channel=0, text="a", language="en")
    both = lhotse.SupervisionSegment("both", "stereo", 0, 1.0, channel=[0, 1], text="a", language="en")
    paths = lhotse_files(tmp_path, [sup("web", recording="web"), left, both], [url, stereo])
    result = import_lhotse(paths)
    assert [u.id for u in result.utts] == ["both"]
    assert {r.utt["id"]: r.reason for r in result.rejected} == {
        "web": "audio: recording 'web' is a lhotse 'url' source, not a file",
        "left": "audio: channel 0 of recording 'stereo' (2 channels in one file): hlora reads a file's channels "
        "mixed down",
    }


def test_bad_inputs_are_one_line_errors_and_write_nothing(tmp_path):
    paths = lhotse_files(tmp_path, [sup("ok")])
    out = tmp_path / "m.jsonl"
    code, _, err = run_main_output("prepare", "lhotse", paths[0], "-o", out)
    assert code == 2 and f"error: {paths[0]}: a lhotse RecordingSet, expected a CutSet" in err
    not_lhotse = tmp_path / "x.jsonl"
    not_lhotse.write_text('{"id": "u", "audio": "a.wav", "lang": "en", "text": "hi"}\n')
    code, _, err = run_main_output("prepare", "lhotse", not_lhotse, "-o", out)
    assert code == 2 and err.startswith(f"error: {not_lhotse}: not a lhotse manifest")
    code, _, err = run_main_output("prepare", "lhotse", *paths, "-o", out, "--lang-map", "English")
    assert code == 2 and "error: --lang-map 'English': expected NAME=CODE pairs" in err
    code, _, err = run_main_output("prepare", "lhotse", *paths, paths[0], "-o", out)
    assert code == 2 and "error: give CUTS, or RECORDINGS SUPERVISIONS" in err
    assert not out.exists()
    manifest, utts = corpus(tmp_path / "c")
    with pytest.raises(HloraError, match="^utterance id 'clip' appears twice; lhotse ids must be unique$"):
        export_lhotse([*utts, utts[-1]], tmp_path / "dup")
    assert not (tmp_path / "dup").exists() or not any((tmp_path / "dup").iterdir())


def test_supervision_text_and_language_in_the_files(tmp_path):
    manifest, _ = corpus(tmp_path)
    export_lhotse(read_manifest(manifest), tmp_path / "lh")
    with gzip.open(tmp_path / "lh" / "supervisions.jsonl.gz", "rt") as f:
        rows = {r["id"]: r for r in map(json.loads, f)}
    assert rows["clip"]["custom"] == {"text_norm": "un extrait"} and rows["talk-a"]["speaker"] == "s1"
    assert (rows["talk-a"]["start"], rows["talk-a"]["duration"], rows["talk-a"]["text"]) == (0.5, 1.0, "the first part")


def test_lhotse_reads_a_kaldi_dir_as_prepare_kaldi_does(tmp_path):
    """lhotse's Kaldi loader + `prepare lhotse` gives the rows `prepare kaldi` gives (README: why we
    keep our importer anyway)."""
    from lhotse.kaldi import load_kaldi_data_dir

    manifest, _ = corpus(tmp_path)
    assert run_main_output("prepare", "export-kaldi", manifest, tmp_path / "kaldi")[0] == 0
    assert run_main_output("prepare", "kaldi", tmp_path / "kaldi", "-o", tmp_path / "ours.jsonl")[0] == 0
    recordings, supervisions, _ = load_kaldi_data_dir(tmp_path / "kaldi", sampling_rate=16000)
    recordings.to_file(tmp_path / "recs.jsonl.gz")
    supervisions.to_file(tmp_path / "sups.jsonl.gz")
    code, _, err = run_main_output(
        "prepare", "lhotse", tmp_path / "recs.jsonl.gz", tmp_path / "sups.jsonl.gz", "-o", tmp_path / "theirs.jsonl"
    )
    assert code == 0, err

    def rows(name):  # Kaldi's "its own speaker" (utt2spk: clip clip) is no speaker to us, "clip" to lhotse
        return {
            u.id: (u.audio, u.lang, u.text, u.start or 0.0, None if u.speaker == u.id else u.speaker)
            for u in read_manifest(tmp_path / name)
        }

    ours, theirs = rows("ours.jsonl"), rows("theirs.jsonl")
    assert len(ours) == 3 and ours == theirs
