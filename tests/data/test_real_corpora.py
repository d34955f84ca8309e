"""The importers of recipes/real's three corpora, on layouts the tests build: speechocean762 (Kaldi,
paths relative to the corpus root), the Deeply Korean Read Speech Corpus (a JSON of rooms) and Magic
Data's Mandarin TTS corpus (prosody marks, 48 kHz); the sentence-disjoint split and the per-language
sample the recipe takes its test set with."""

import json

import pytest
import soundfile as sf

from hlora_cli.data.importers.deeply_ko import import_deeply_ko
from hlora_cli.data.importers.magicdata_tts import strip_prosody
from hlora_cli.data.manifest import Utterance, read_manifest, write_manifest
from hlora_cli.data.split import split_groups
from hlora_cli.errors import HloraError
from tests.data.helpers import write_audio
from tests.helpers import run_cli

ROOMS = ("AirbnbStudio", "AnechoicChamber", "DanceStudio")
KO = [f"문장 {i}번입니다." for i in range(10)]


def speechocean(root):
    for split, ids in (("train", ["000010011", "000010035"]), ("test", ["000030012"])):
        (root / split).mkdir(parents=True)
        (root / split / "wav.scp").write_text("".join(f"{u}\tWAVE/SPEAKER{u[:4]}/{u}.WAV\n" for u in ids))
        (root / split / "text").write_text("".join(f"{u}\tWE CALL IT BEAR {u[-2:]}\n" for u in ids))
        (root / split / "utt2spk").write_text("".join(f"{u}\t{u[:4]}\n" for u in ids))
        for u in ids:
            write_audio(root / "WAVE" / f"SPEAKER{u[:4]}" / f"{u}.WAV", 1.0, format="WAV")
    return root


def deeply(root):
    meta = {}
    for r, room in enumerate(ROOMS):
        meta[room] = {}
        for i, text in enumerate(KO):
            utt = f"sub10{r}10{i % 2}a{i:05d}"
            write_audio(root / "dataset" / room / f"{utt}.wav", 0.5 + 0.1 * i)
            meta[room][utt] = {"subjectID": f"sub10{r}1", "speaker": "ab"[i % 2], "text": text, "text_code": f"aa{i}"}
    (root / "dataset" / "Korean_Read_Speech_Corpus_sample.json").write_text(json.dumps(meta, ensure_ascii=True))
    return root


def magicdata(root):
    rows = {
        "education": [
            "100001\t它#1包含了#1课程#2，就#1大班#1课程#1和#1它这种#1VIP#1一对一#4。",
            "100002\t深入的#1Java Script#3，这些啊#2",
        ],
        "finance": ["100051\t本保险#1每年#1一百五十元#4。"],
    }
    (root / "ProsodyLabeling").mkdir(parents=True)
    for domain, lines in rows.items():
        (root / "ProsodyLabeling" / f"{domain}.txt").write_text("".join(f"{line}\n\tta1 bao1\n" for line in lines))
        for line in lines:
            write_audio(root / "Wave" / domain / f"{line.split()[0]}.wav", 1.5, sr=48000)
    return root


def test_speechocean_paths_start_at_the_corpus_root(tmp_path):
    root = speechocean(tmp_path / "speechocean762")
    run_cli("prepare", "kaldi", root / "train", "--lang", "en", "--audio-root", root, "-o", tmp_path / "train.jsonl")
    utts = read_manifest(tmp_path / "train.jsonl")
    assert [(u.id, u.lang, u.text, u.speaker, u.duration) for u in utts] == [
        ("000010011", "en", "WE CALL IT BEAR 11", "0000", 1.0),
        ("000010035", "en", "WE CALL IT BEAR 35", "0000", 1.0),
    ]
    assert utts[0].audio == str(root / "WAVE" / "SPEAKER0000" / "000010011.WAV")
    # without --audio-root the paths start at the data dir, where the audio is not: every row rejected
    run_cli("prepare", "kaldi", root / "test", "--lang", "en", "-o", tmp_path / "test.jsonl")
    assert read_manifest(tmp_path / "test.jsonl") == []
    assert "unreadable audio" in (tmp_path / "test.rejected.jsonl").read_text()
    r = run_cli(
        "prepare",
        "kaldi",
        root / "test",
        "--lang",
        "en",
        "--audio-root",
        tmp_path / "nope",
        "-o",
        tmp_path / "x.jsonl",
        check=False,
    )
    assert r.returncode == 2 and r.stderr == f"error: --audio-root {tmp_path / 'nope'}: not a directory"


def test_deeply_korean_rows(tmp_path):
    root = deeply(tmp_path / "Korean-Read-Speech-Corpus")
    result = import_deeply_ko(root)
    assert len(result.utts) == 30 and not result.rejected
    first = result.utts[0]
    assert (first.id, first.lang, first.text, first.speaker) == ("sub100100a00000", "ko", KO[0], "sub1001-a")
    assert first.audio == str(root / "dataset" / "AirbnbStudio" / "sub100100a00000.wav")
    assert len(import_deeply_ko(root / "dataset").utts) == 30  # the dataset/ folder itself also works
    with pytest.raises(HloraError, match="Korean_Read_Speech_Corpus_sample.json: not found"):
        import_deeply_ko(tmp_path)
    (root / "dataset" / "Korean_Read_Speech_Corpus_sample.json").write_text('{"room": [1, 2]}')
    with pytest.raises(HloraError, match=r"sample.json: expected \{room"):
        import_deeply_ko(root)


def test_magicdata_prosody_marks_and_48k_audio(tmp_path):
    root = magicdata(tmp_path / "zh")
    assert (
        strip_prosody("它#1包含了#1课程#2，就#1大班#1课程#1和#1它这种#1VIP#1一对一#4。")
        == "它包含了课程，就大班课程和它这种VIP一对一。"
    )
    assert strip_prosody("Java#1Script#3好") == "Java Script好"
    run_cli("prepare", "magicdata-tts", root, "-o", tmp_path / "zh.jsonl")
    utts = read_manifest(tmp_path / "zh.jsonl")
    assert [(u.id, u.lang, u.text, u.duration) for u in utts] == [
        ("100001", "zh", "它包含了课程，就大班课程和它这种VIP一对一。", 1.5),
        ("100002", "zh", "深入的Java Script，这些啊", 1.5),
        ("100051", "zh", "本保险每年一百五十元。", 1.5),
    ]
    assert sf.info(utts[0].audio).samplerate == 48000  # referenced in place, resampled when read
    (root / "ProsodyLabeling" / "finance.txt").write_text("no tab here\n")
    r = run_cli("prepare", "magicdata-tts", root, "-o", tmp_path / "zh2.jsonl", check=False)
    assert (
        r.returncode == 2
        and r.stderr == f"error: {root / 'ProsodyLabeling' / 'finance.txt'}:1: expected '<id><TAB><text>'"
    )
    assert not (tmp_path / "zh2.jsonl").exists()


def test_split_by_sentence_keeps_every_reading_of_a_sentence_on_one_side(tmp_path):
    root = deeply(tmp_path / "ko")
    run_cli("prepare", "deeply-ko", root, "-o", tmp_path / "ko.jsonl")
    run_cli(
        "prepare",
        "split",
        tmp_path / "ko.jsonl",
        "--by",
        "text",
        "--test-fraction",
        "0.2",
        "-o",
        tmp_path / "train.jsonl",
        "--test-out",
        tmp_path / "test.jsonl",
    )
    train, test = read_manifest(tmp_path / "train.jsonl"), read_manifest(tmp_path / "test.jsonl")
    assert len(train) + len(test) == 30
    assert not {u.text for u in train} & {u.text for u in test}
    assert len({u.text for u in test}) == 2  # a fifth of the 10 sentences
    assert {u.audio.split("/")[-2] for u in test} == set(ROOMS)  # each held-out sentence in every room
    # seeded: the same split again, another with another seed
    again, _ = split_groups(read_manifest(tmp_path / "ko.jsonl"), "text", 0.2, seed=0)
    assert [u.id for u in again] == [u.id for u in train]
    other, _ = split_groups(read_manifest(tmp_path / "ko.jsonl"), "text", 0.2, seed=5)
    assert [u.id for u in other] != [u.id for u in train]


def test_split_normalizes_the_text_and_refuses_bad_options(tmp_path):
    utts = [
        Utterance(f"u{i}", "a.wav", "en", t) for i, t in enumerate(["Hello, world!", "hello world", "Good day", "Bye"])
    ]
    train, test = split_groups(utts, "text", 0.34, seed=0)
    hello = {u.id for u in train + test if u.id in ("u0", "u1")}
    assert hello <= {u.id for u in train} or hello <= {u.id for u in test}  # one sentence, two spellings
    assert len(test) in (1, 2) and len(train) + len(test) == 4
    with pytest.raises(HloraError, match="--by room: choose text, speaker, id"):
        split_groups(utts, "room", 0.2)
    with pytest.raises(HloraError, match="--test-fraction 1: give a fraction between 0 and 1"):
        split_groups(utts, "text", 1.0)


def test_subset_per_language_sample(tmp_path):
    utts = [
        Utterance(f"{lang}{i}", str(write_audio(tmp_path / f"{lang}{i}.wav", 0.3)), lang, "x")
        for lang in ("en", "ko")
        for i in range(5)
    ]
    utts.append(Utterance("zh0", utts[0].audio, "zh", "x"))
    write_manifest(tmp_path / "all.jsonl", utts)
    run_cli(
        "prepare", "subset", tmp_path / "all.jsonl", "--per-language", "2", "--seed", "3", "-o", tmp_path / "s.jsonl"
    )
    kept = read_manifest(tmp_path / "s.jsonl")
    assert [u.lang for u in kept].count("en") == 2 and [u.lang for u in kept].count("ko") == 2
    assert [u.id for u in kept if u.lang == "zh"] == ["zh0"]  # fewer than N: all of them
    assert [u.id for u in kept] == [u.id for u in utts if u.id in {k.id for k in kept}]  # input order
    rejected = [json.loads(line) for line in (tmp_path / "s.rejected.jsonl").read_text().splitlines()]
    assert len(rejected) == 6 and {r["reason"] for r in rejected} == {"not in the --per-language sample"}
    run_cli(
        "prepare", "subset", tmp_path / "all.jsonl", "--per-language", "2", "--seed", "3", "-o", tmp_path / "t.jsonl"
    )
    assert (tmp_path / "t.jsonl").read_text() == (tmp_path / "s.jsonl").read_text()
    r = run_cli(
        "prepare", "subset", tmp_path / "all.jsonl", "--per-language", "0", "-o", tmp_path / "u.jsonl", check=False
    )
    assert r.returncode == 2 and r.stderr == "error: --per-language 0: keep at least 1"
    r = run_cli(
        "prepare", "subset", tmp_path / "all.jsonl", "--per-language", "2", "-o", tmp_path / "all.jsonl", check=False
    )
    assert r.returncode == 2 and "would overwrite the input" in r.stderr
