"""The reliability cases whose unit tests call a function directly, replayed through the real entry
point (`main()`): the exit status, the one `error:` line (or the skip line) naming the file or value,
and every file that was there before byte-identical."""

import json
import os

import numpy as np
import pytest
import soundfile as sf
import torch

from hlora_cli.model import build_model, save_model
from tests.conftest import TINY, tiny_config
from tests.data.helpers import write_audio
from tests.helpers import run_main, run_main_output, snapshot


class Evil:
    def __reduce__(self):
        return (os.system, ("echo ran > ran.txt",))


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    from transformers import WhisperConfig, WhisperModel

    root = tmp_path_factory.mktemp("main")
    rows = [
        {"id": f"{lang}{i}", "audio": str(write_audio(root / f"{lang}{i}.wav", 0.8)), "lang": lang, "text": "a b"}
        for lang in ("en", "de")
        for i in range(2)
    ]
    (root / "t.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    assert run_main("prepare", "vocab", root / "t.jsonl", "-o", root / "v.json")[0] == 0
    WhisperModel(WhisperConfig(**TINY["whisper"])).save_pretrained(root / "pickled")
    (root / "pickled" / "model.safetensors").unlink()
    torch.save({"x": Evil()}, root / "pickled" / "pytorch_model.bin")
    save_model(build_model(tiny_config("whisper", "lidlora")), root / "lidlora")
    expert = tiny_config("whisper", "expert")
    expert.languages, expert.vocabs = ["en"], {"en": expert.vocabs["en"]}
    save_model(build_model(expert), root / "expert_en")
    save_model(build_model(tiny_config("whisper", k=2)), root / "m")
    return root


def train(root, *extra):
    return ["train", "--train", root / "t.jsonl", "--vocab", root / "v.json", "--model-type", "shared-lora",
            "--max-steps", "1", "--out", root / "out" / "run", *extra]  # fmt: skip


def test_a_pickled_backbone(world, monkeypatch):
    monkeypatch.chdir(world)
    before = snapshot(world)
    code, err = run_main(*train(world, "--backbone", world / "pickled"))
    assert code == 2 and err.strip() == (
        f"error: {world / 'pickled'}: its pytorch_model.bin holds pickled objects beyond tensors: refused, nothing in "
        "it was run; give the model as model.safetensors"
    ), err
    assert not (world / "ran.txt").exists()
    assert snapshot(world) == before


def test_a_garbage_bpe_model_in_the_vocab(world, tmp_path):
    vocab = json.loads((world / "v.json").read_text())
    (tmp_path / "v.json").write_text(json.dumps({**vocab, "bpe": {"en": "bm90IGEgbW9kZWw="}}))
    code, err = run_main(*train(world, "--vocab", tmp_path / "v.json", "--backbone", "b"))
    assert code == 2 and err.startswith(
        f"error: {tmp_path / 'v.json'}: bpe['en']: a BPE model in the vocabulary is not a sentencepiece model ("
    ), err


def test_two_stage_with_an_expert_as_first_stage(world, tmp_path):
    code, err = run_main("decode", world / "t.jsonl", "--model", world / "lidlora", "--mode", "two-stage",
                         "--lid-model", world / "expert_en", "-o", tmp_path / "o.jsonl")  # fmt: skip
    langs = ", ".join(tiny_config("whisper").languages)
    assert code == 2 and err.strip() == (
        f"error: the --lid-model tells only en apart, the model decodes {langs}: give a first stage whose LID covers "
        "every language of the model"
    ), err
    assert not (tmp_path / "o.jsonl").exists()


def test_a_negative_segment_is_skipped_and_named(world, tmp_path):
    row = {"id": "neg", "audio": str(world / "en0.wav"), "lang": "en", "text": "a", "start": -1.0, "end": 0.1 + 0.2}
    (tmp_path / "neg.jsonl").write_text(json.dumps(row) + "\n")
    code, out, err = run_main_output("decode", tmp_path / "neg.jsonl", "--model", world / "m", "--num-workers", "0",
                                     "-o", tmp_path / "o.jsonl")  # fmt: skip
    assert code == 1, err
    assert f"skipped neg: {world / 'en0.wav'}: segment from -1.00 s to 0.30 s is empty or starts before the file" in (
        " ".join(out.split())
    )


def test_a_hypothesis_with_a_byte_order_mark_scores(world, tmp_path):
    rows = [json.loads(line) for line in (world / "t.jsonl").read_text().splitlines()]
    hyp = "".join(json.dumps({"id": r["id"], "lang": r["lang"], "text": "a b"}) + "\n" for r in rows)
    (tmp_path / "hyp.jsonl").write_bytes(b"\xef\xbb\xbf" + hyp.encode())
    code, out, err = run_main_output("score", world / "t.jsonl", tmp_path / "hyp.jsonl", "--json", tmp_path / "s.json")
    assert code == 0, err
    scores = json.loads((tmp_path / "s.json").read_text())
    assert scores["lid_accuracy"] == 1.0 and scores["average"]["mer"] == 0.0


def test_an_unwritable_output_folder_before_the_model_loads(world, tmp_path, monkeypatch):
    import hlora_cli.model.checkpoint as checkpoint

    locked = tmp_path / "ro"
    locked.mkdir()
    real_access = os.access
    monkeypatch.setattr(os, "access", lambda p, mode: False if str(p) == str(locked) else real_access(p, mode))
    monkeypatch.setattr(checkpoint, "load_model", lambda *a, **k: pytest.fail("the model was loaded"))
    code, err = run_main("decode", world / "t.jsonl", "--model", world / "m", "-o", locked / "o.jsonl")
    assert code == 2 and err.strip() == (
        f"error: {locked / 'o.jsonl'}: {locked} is not writable, so the output cannot be written there"
    ), err


def test_kaldi_pipe_ids_stay_in_the_cache(world, tmp_path):
    kd = tmp_path / "kd"
    kd.mkdir()
    (tmp_path / "escaped.wav").write_bytes(b"a file of the user's")
    (kd / "text").write_text("../../escaped a b\n")
    (kd / "wav.scp").write_text(f"../../escaped cat {world / 'en0.wav'} |\n")
    code, err = run_main("prepare", "kaldi", kd, "--lang", "en", "--allow-pipes", "-o", tmp_path / "m.jsonl")
    assert code == 0, err
    (row,) = [json.loads(line) for line in (tmp_path / "m.jsonl").read_text().splitlines()]
    assert os.path.dirname(row["audio"]) == "m_pipe_audio"  # relative to the manifest: inside its cache folder
    assert (tmp_path / "escaped.wav").read_bytes() == b"a file of the user's"


def test_training_skips_a_10_ms_clip(world, tiny_backbone_dir):
    sf.write(str(world / "tiny.wav"), np.zeros(160, dtype=np.float32), 16000)
    rows = (world / "t.jsonl").read_text()
    tiny = {"id": "tiny", "audio": str(world / "tiny.wav"), "lang": "en", "text": "a"}
    (world / "t_tiny.jsonl").write_text(rows + json.dumps(tiny) + "\n")
    args = train(world, "--backbone", tiny_backbone_dir, "--batch-seconds", "30")
    args[2] = world / "t_tiny.jsonl"
    code, out, err = run_main_output(*args)
    assert code == 0, err
    assert "shorter than 50 ms" in " ".join(out.split())


@pytest.fixture(scope="module")
def tiny_backbone_dir(tmp_path_factory):
    from transformers import WhisperConfig, WhisperFeatureExtractor, WhisperModel

    out = tmp_path_factory.mktemp("tiny-whisper")
    WhisperModel(WhisperConfig(**TINY["whisper"])).save_pretrained(out)
    WhisperFeatureExtractor(feature_size=80).save_pretrained(out)
    return out


def test_oracle_maps_a_region_code_as_training_does(world, tmp_path):
    rows = [json.loads(line) for line in (world / "t.jsonl").read_text().splitlines()]
    (tmp_path / "us.jsonl").write_text("".join(json.dumps({**r, "lang": r["lang"] + "-US"}) + "\n" for r in rows))
    code, err = run_main("decode", tmp_path / "us.jsonl", "--model", world / "m", "--mode", "oracle",
                         "--num-workers", "0", "-o", tmp_path / "o.jsonl")  # fmt: skip
    assert code == 0, err
    decoded = {d["id"]: d["lang"] for d in map(json.loads, (tmp_path / "o.jsonl").read_text().splitlines())}
    assert decoded == {r["id"]: r["lang"] for r in rows}  # en-US rows decoded as en, de-US as de
    (tmp_path / "fr.jsonl").write_text(json.dumps({**rows[0], "lang": "ko"}) + "\n")
    code, err = run_main("decode", tmp_path / "fr.jsonl", "--model", world / "m", "--mode", "oracle",
                         "--num-workers", "0", "-o", tmp_path / "f.jsonl")  # fmt: skip
    langs = ", ".join(tiny_config("whisper").languages)
    assert code == 2 and err.strip() == (
        f"error: {tmp_path / 'fr.jsonl'}: en0: its language ko has no LoRA/head in this model (it knows {langs}); "
        "oracle decoding needs the utterance's language"
    ), err


def test_a_backbone_of_another_kind(world, tmp_path):
    from transformers import HubertConfig, HubertModel

    HubertModel(HubertConfig(**TINY["hubert"])).save_pretrained(tmp_path / "hubert")
    config = json.loads((world / "m" / "config.json").read_text())  # a Whisper model, its backbone moved
    (tmp_path / "m").mkdir()
    for name in os.listdir(world / "m"):
        (tmp_path / "m" / name).write_bytes((world / "m" / name).read_bytes())
    config["backbone"]["source"] = str(tmp_path / "hubert")
    (tmp_path / "m" / "config.json").write_text(json.dumps(config))
    code, err = run_main("decode", world / "t.jsonl", "--model", tmp_path / "m", "-o", tmp_path / "o.jsonl")
    assert code == 2 and err.strip() == (
        f"error: {tmp_path / 'hubert'}: is a hubert model, and this model was built on a whisper backbone"
    ), err
