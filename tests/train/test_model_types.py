"""The paper's systems through the trainer and the CLI: the LoRA-free ctc model (its language from
the prefix token, two-stage first stage), soft-routed HLoRA, the frame LID head, BPE units."""

import json

import pytest

from hlora_cli.data.manifest import read_manifest
from hlora_cli.data.vocab import Vocab, build_vocab, from_tokens
from hlora_cli.errors import HloraError
from hlora_cli.model import load_model
from tests.helpers import run_cli
from tests.train.conftest import losses, make_corpus, train_args


def decode(*args):
    return run_cli("decode", *args)


def read(path):
    return {r["id"]: r for r in map(json.loads, path.read_text().splitlines())}


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    return make_corpus(tmp_path_factory.mktemp("corpus"))


@pytest.fixture(scope="module")
def ctc_run(tiny_backbone, corpus, tmp_path_factory):
    manifest, vocab = corpus
    out = tmp_path_factory.mktemp("ctc") / "run"
    extra = ["--model-type", "ctc", "--max-steps", "40", "--lr", "1e-3", "--head-lr", "1e-2"]
    extra += ["--dev", str(manifest), "--eval-every", "20"]
    r = run_cli(*train_args(tiny_backbone, manifest, vocab, out, *extra))
    assert "fully fine-tuned" in r.stdout
    return out


def test_ctc_trains_the_whole_encoder_and_learns(ctc_run):
    loss = losses(ctc_run)
    assert len(loss) == 40 and sum(list(loss.values())[-5:]) < 0.5 * sum(list(loss.values())[:5])
    model = load_model(ctc_run / "best")
    assert model.config.model_type == "ctc" and model.config.shared_vocab[3:5] == ["<de>", "<en>"]
    trainable, frozen = model.parameter_counts()
    assert trainable > frozen  # everything but the conv frontend trains
    evals = [json.loads(x) for x in (ctc_run / "metrics.jsonl").read_text().splitlines() if "dev_lid_acc" in x]
    assert [e["step"] for e in evals] == [20, 40] and 0 <= evals[-1]["dev_lid_acc"] <= 1


def test_ctc_decodes_with_its_prefix_token_as_language_and_never_in_the_text(ctc_run, corpus, tmp_path):
    manifest, _ = corpus
    decode(str(manifest), "--model", str(ctc_run / "best"), "-o", str(tmp_path / "hyp.jsonl"))
    hyps = read(tmp_path / "hyp.jsonl")
    assert len(hyps) == 8 and {h["lang"] for h in hyps.values()} <= {"en", "de"}
    for h in hyps.values():
        assert sum(h["lang_probs"].values()) == pytest.approx(1, abs=1e-3)
        assert h["lang"] == max(h["lang_probs"], key=h["lang_probs"].get)
        assert "<" not in h["text"]
    r = run_cli("lid", str(manifest), "--model", str(ctc_run / "best"), "-o", str(tmp_path / "lid.jsonl"))
    lid = read(tmp_path / "lid.jsonl")
    assert {i: x["lang"] for i, x in lid.items()} == {i: h["lang"] for i, h in hyps.items()}
    assert "LID accuracy" in r.stdout
    score = run_cli("score", str(manifest), str(tmp_path / "hyp.jsonl"))
    assert "LID" in score.stdout


def test_two_stage_with_the_ctc_model_as_first_stage(ctc_run, tiny_backbone, corpus, tmp_path):
    manifest, vocab = corpus
    lidlora = tmp_path / "lidlora"
    run_cli(*train_args(tiny_backbone, manifest, vocab, lidlora, "--model-type", "lidlora", "--max-steps", "3"))
    args = [str(manifest), "--model", str(lidlora / "best"), "--mode", "two-stage"]
    decode(*args, "--lid-model", str(ctc_run / "best"), "-o", str(tmp_path / "two.jsonl"))
    from dataclasses import replace

    from hlora_cli.data.manifest import write_manifest

    two = read(tmp_path / "two.jsonl")
    lid = run_cli("lid", str(manifest), "--model", str(ctc_run / "best"), "-o", str(tmp_path / "lid.jsonl"))
    assert lid.returncode == 0
    first_stage = {i: x["lang"] for i, x in read(tmp_path / "lid.jsonl").items()}
    assert {i: h["lang"] for i, h in two.items()} == first_stage
    # two-stage = oracle decoding with the languages the ctc model gave
    given = write_manifest(
        tmp_path / "given.jsonl", [replace(u, lang=first_stage[u.id]) for u in read_manifest(manifest)]
    )
    decode(str(given), "--model", str(lidlora / "best"), "--mode", "oracle", "-o", str(tmp_path / "oracle.jsonl"))
    oracle = read(tmp_path / "oracle.jsonl")
    assert {i: h["text"] for i, h in two.items()} == {i: h["text"] for i, h in oracle.items()}
    meta = json.loads((tmp_path / "two.meta.json").read_text())
    assert meta["lid_model"] == str(ctc_run / "best")


def test_soft_routing_trains_the_lid_head_through_the_ctc_loss(tiny_backbone, corpus, tmp_path):
    from hlora_cli.train.trainer import Trainer
    from tests.train.conftest import config

    manifest, vocab = corpus
    cfg = config(tiny_backbone, manifest, vocab, max_steps=1, train_routing="soft", lid_weight=0.0)
    trainer = Trainer(cfg, tmp_path / "soft")
    assert all(e.targets_by_lang is not None and len(e.targets_by_lang) == 2 for e in trainer.train_data.examples)
    trainer.model.train()
    out, parts = trainer._forward(*trainer.load_batch(trainer.train_data, list(range(4))), "soft")
    assert out.route_weights is not None and len(out.head_ctc_logprobs) == 2
    parts.total.backward()
    lid_grad = [p.grad for p in trainer.model.lid_head.parameters()]
    assert parts.lid.item() == 0 and any(g is not None and g.abs().sum() > 0 for g in lid_grad)
    trainer.fit()
    assert load_model(tmp_path / "soft" / "best").config.k == 2


def test_soft_routing_needs_an_hlora_model(tiny_backbone, corpus, tmp_path):
    manifest, vocab = corpus
    extra = ["--model-type", "lidlora", "--max-steps", "1", "--train-routing", "soft"]
    r = run_cli(*train_args(tiny_backbone, manifest, vocab, tmp_path / "x", *extra), check=False)
    assert r.returncode == 2 and "--train-routing soft needs an hlora model" in r.stderr


def test_decode_routing_options_and_frame_lid_head(tiny_backbone, corpus, tmp_path):
    manifest, vocab = corpus
    run = tmp_path / "run"
    run_cli(*train_args(tiny_backbone, manifest, vocab, run, "--max-steps", "6", "--lid-head", "frame"))
    assert load_model(run / "best").config.lid.head == "frame"
    texts = {}
    for routing in ("hard", "soft", "top2"):
        out = tmp_path / f"{routing}.jsonl"
        decode(str(manifest), "--model", str(run / "best"), "--routing", routing, "-o", str(out))
        texts[routing] = read(out)
        assert json.loads((tmp_path / f"{routing}.meta.json").read_text())["routing"] == routing
    assert texts["hard"].keys() == texts["soft"].keys() == texts["top2"].keys()
    # with two languages, top-2 mixing is soft mixing
    assert {i: r["text"] for i, r in texts["top2"].items()} == {i: r["text"] for i, r in texts["soft"].items()}
    r = run_cli(
        "decode", str(manifest), "--model", str(run / "best"), "--routing", "maybe", "-o", "x.jsonl", check=False
    )
    assert r.returncode == 2 and "unknown routing 'maybe': choose hard, soft, top2" in r.stderr


def test_bpe_encode_then_decode_gives_back_the_normalized_text(corpus):
    manifest, _ = corpus
    utts = read_manifest(manifest)
    vocab = build_vocab(utts, prefix_tokens=True, unit="bpe", bpe_size=12)
    assert set(vocab.bpe) == {"en", "de", "shared"}
    assert any(t.startswith("▁") and len(t) > 1 for t in vocab.languages["en"])
    for u in utts:
        for shared in (False, True):
            tokens = vocab.languages[u.lang] if not shared else vocab.shared
            ids, unknown = vocab.encode(u.text_norm, u.lang, shared=shared)
            assert unknown == 0
            assert from_tokens([tokens[i] for i in ids], u.lang) == u.text_norm
    ids, _ = vocab.encode("<en> a cab", "en", shared=True)
    assert vocab.shared[ids[0]] == "<en>"


def test_bpe_keeps_characters_for_cer_languages_unless_asked(tmp_path):
    from hlora_cli.data.manifest import Utterance

    utts = [Utterance(f"j{i}", "x.wav", "ja", "今日は 晴れ") for i in range(3)]
    utts += [Utterance(f"e{i}", "x.wav", "en", "good morning to you") for i in range(3)]
    vocab = build_vocab(utts, unit="bpe", bpe_size=20)
    assert "ja" not in vocab.bpe and vocab.bpe_languages == ["en"]
    assert "今" in vocab.languages["ja"]
    vocab.save(tmp_path / "v.json")
    again = Vocab.load(tmp_path / "v.json")
    assert again.encode("good morning", "en") == vocab.encode("good morning", "en")
    assert "ja" in build_vocab(utts, unit="bpe", bpe_size=20, bpe_cer_languages=True).bpe


def test_bpe_model_trains_decodes_and_beam_searches(tiny_backbone, corpus, tmp_path):
    manifest, _ = corpus
    run_cli("prepare", "vocab", str(manifest), "-o", str(tmp_path / "v.json"), "--unit", "bpe", "--bpe-size", "12")
    run = tmp_path / "run"
    run_cli(*train_args(tiny_backbone, manifest, tmp_path / "v.json", run, "--max-steps", "30"))
    model = load_model(run / "best")
    assert set(model.config.bpe_models) == {"en", "de"}
    decode(str(manifest), "--model", str(run / "best"), "-o", str(tmp_path / "g.jsonl"))
    decode(str(manifest), "--model", str(run / "best"), "--decoder", "beam", "-o", str(tmp_path / "b.jsonl"))
    greedy, beam = read(tmp_path / "g.jsonl"), read(tmp_path / "b.jsonl")
    assert not any("▁" in r["text"] or "|" in r["text"] for r in greedy.values())
    same = sum(greedy[i]["text"] == beam[i]["text"] for i in greedy)
    assert same >= 6  # beam without an LM mostly agrees with greedy on pieces
    r = run_cli("info", str(run / "best"))
    assert "bpe (de, en)" in r.stdout


def test_resume_refuses_another_model_setting_and_keeps_new_steps(tiny_backbone, corpus, tmp_path):
    manifest, vocab = corpus
    run = tmp_path / "run"
    run_cli(*train_args(tiny_backbone, manifest, vocab, run, "--max-steps", "2"))
    r = run_cli("train", "--out", run, "--resume", "--k", "1", check=False)
    assert r.returncode == 2
    assert r.stderr == f"error: {run}: --resume with k=1, but the run was trained with 2: resume with the run's " + (
        "setting, or start a new run in another directory"
    )
    run_cli("train", "--out", run, "--resume", "--max-steps", "4")
    assert sorted(losses(run)) == [1, 2, 3, 4] and "max_steps: 4" in (run / "train.yaml").read_text()


def test_bpe_size_below_the_character_count_is_raised_to_it(corpus):
    manifest, _ = corpus
    utts = read_manifest(manifest)
    vocab = build_vocab(utts, unit="bpe", bpe_size=2)
    chars = {c for u in utts if u.lang == "en" for c in u.text_norm if c != " "}
    assert chars <= {t.lstrip("▁") for t in vocab.languages["en"]}
    assert all(vocab.encode(u.text_norm, u.lang)[1] == 0 for u in utts)


def test_train_overwrite_removes_only_the_runs_files_and_stale_temp_files(tiny_backbone, tmp_path):
    manifest, vocab = make_corpus(tmp_path / "data")
    run = tmp_path / "run"
    run_cli(*train_args(tiny_backbone, manifest, vocab, run, "--max-steps", "2"))
    (run / "my_notes.txt").write_text("keep me")
    (run / ".checkpoint.pt.abc123").write_bytes(b"half")  # a write killed half-way
    run_cli("train", "--out", run, "--resume", "--max-steps", "3")
    assert not (run / ".checkpoint.pt.abc123").exists()
    run_cli(*train_args(tiny_backbone, manifest, vocab, run, "--max-steps", "2", "--overwrite"))
    assert (run / "my_notes.txt").read_text() == "keep me"
    records = [json.loads(x) for x in (run / "metrics.jsonl").read_text().splitlines()]
    # the new run's two steps (and its heads' emission at step 2); the earlier run's step 3 is gone
    assert [r["step"] for r in records if "loss" in r] == [1, 2] and max(r["step"] for r in records) == 2


def test_a_full_disk_keeps_the_previous_checkpoint_and_the_next_start_cleans_up(tiny_backbone, corpus, tmp_path):
    import errno

    from hlora_cli.train import state as run_state
    from hlora_cli.train.config import load_config
    from hlora_cli.train.trainer import Trainer

    manifest, vocab = corpus
    run = tmp_path / "run"
    run_cli(*train_args(tiny_backbone, manifest, vocab, run, "--max-steps", "2"))
    before = run_state.load_checkpoint(run)["step"]
    trainer = Trainer(load_config(run / "train.yaml", {"max_steps": 4}), run, resume=True)

    def full_disk(obj, path, *a, **kw):
        with open(path, "wb") as f:
            f.write(b"partial")
        raise OSError(errno.ENOSPC, "No space left on device", str(path))

    real_save = run_state.torch.save
    run_state.torch.save = full_disk
    try:
        with pytest.raises(HloraError) as e:  # the checkpoint's own name, not the hidden temporary's
            trainer.fit()
        assert str(e.value) == f"{run / 'checkpoint.pt'}: cannot be written (No space left on device)"
    finally:
        run_state.torch.save = real_save
    assert run_state.load_checkpoint(run)["step"] == before == 2  # the previous checkpoint survived
    assert not list(run.glob(".checkpoint.pt.*"))
    (run / "best.tmp").mkdir()  # as a killed model-directory write leaves it
    run_cli("train", "--out", run, "--resume", "--max-steps", "4")
    assert not (run / "best.tmp").exists() and run_state.load_checkpoint(run)["step"] == 4


def test_os_errors_print_one_line_naming_the_file(monkeypatch, capsys):
    import errno

    from hlora_cli.cli import main as cli_main

    def app(**kw):
        raise OSError(errno.ENOSPC, "No space left on device", "/runs/x/checkpoint.pt")

    monkeypatch.setattr(cli_main, "app", app)
    with pytest.raises(SystemExit) as stop:
        cli_main.main()
    assert stop.value.code == 1
    assert capsys.readouterr().err.strip() == "error: /runs/x/checkpoint.pt: No space left on device"


@pytest.mark.skipif(not __import__("torch").cuda.is_available(), reason="needs a CUDA GPU")
def test_bf16_training_and_decoding_on_the_gpu(tiny_backbone, corpus, tmp_path):
    manifest, vocab = corpus
    run = tmp_path / "run"
    run_cli(*train_args(tiny_backbone, manifest, vocab, run, "--max-steps", "20", "--device", "cuda"))
    loss = losses(run)
    assert len(loss) == 20 and all(v == v for v in loss.values()) and loss[20] < loss[1]
    for dtype in ("fp32", "bf16"):
        out = tmp_path / f"{dtype}.jsonl"
        run_cli("decode", manifest, "--model", run / "best", "--device", "cuda", "--dtype", dtype, "-o", out)
        assert json.loads((tmp_path / f"{dtype}.meta.json").read_text())["device"].startswith("cuda")


def test_without_a_terminal_training_prints_plain_progress_lines_and_no_library_bars(tiny_backbone, corpus, tmp_path):
    import os
    import subprocess
    import sys

    manifest, vocab = corpus
    args = train_args(tiny_backbone, manifest, vocab, tmp_path / "run", "--max-steps", "3")
    env = {**os.environ, "HLORA_PROGRESS_SECONDS": "0"}
    r = subprocess.run([sys.executable, "-m", "hlora_cli", *args], capture_output=True, text=True, env=env)
    assert r.returncode == 0, r.stderr
    lines = [x for x in r.stdout.splitlines() if x.startswith("step ")]
    assert [x.split(":")[0] for x in lines] == ["step 1/3", "step 2/3", "step 3/3"]
    assert all("loss " in x and "audio-s/s" in x and "ETA" in x for x in lines)
    assert "Loading weights" not in r.stderr and "it/s]" not in r.stderr


def test_training_leaves_out_audio_with_non_finite_samples_and_names_it(tiny_backbone, tmp_path):
    import numpy as np
    import soundfile as sf

    from hlora_cli.data.manifest import Utterance

    bad = tmp_path / "nan.wav"
    sf.write(str(bad), np.full(9600, np.nan, dtype=np.float32), 16000, subtype="FLOAT")
    manifest, vocab = make_corpus(tmp_path / "data", [Utterance("nan0", str(bad), "en", "a cab", text_norm="a cab")])
    r = run_cli(*train_args(tiny_backbone, manifest, vocab, tmp_path / "run", "--max-steps", "8"))
    assert f"left out nan0: {bad}: has non-finite samples" in r.stdout.replace("\n", " ")
    assert "unreadable audio: 1" in r.stdout
    loss = losses(tmp_path / "run")
    assert len(loss) == 8 and all(v == v and v != float("inf") for v in loss.values())


def test_bf16_training_on_the_cpu_is_an_option_and_fp32_stays_the_default(tiny_backbone, corpus, tmp_path):
    manifest, vocab = corpus
    runs = {}
    for dtype in ("auto", "bf16"):
        runs[dtype] = tmp_path / dtype
        run_cli(*train_args(tiny_backbone, manifest, vocab, runs[dtype], "--max-steps", "4", "--dtype", dtype))
    auto, bf16 = losses(runs["auto"]), losses(runs["bf16"])
    assert len(bf16) == 4 and all(v == v for v in bf16.values())
    assert bf16[1] != auto[1] and bf16[1] == pytest.approx(auto[1], rel=0.05)  # bf16 rounding, same step
    r = run_cli(
        *train_args(tiny_backbone, manifest, vocab, tmp_path / "x", "--max-steps", "1", "--dtype", "fp8"), check=False
    )
    assert r.returncode == 2 and "unknown --dtype fp8: choose auto, fp32 or bf16" in r.stderr
