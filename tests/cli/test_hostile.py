"""A sweep of hostile inputs through the real entry point (`hlora_cli.cli.main.main`, in this
process): each must end with exit status 1 or 2 and, for 2, exactly one line `error: ...` naming
the problem, never a traceback, and must leave every file it was not asked to write unchanged."""

import json
import shutil
import sys

import numpy as np
import pytest
import soundfile as sf

from hlora_cli.model import build_model, save_model
from tests.conftest import tiny_config
from tests.data.helpers import write_audio
from tests.helpers import snapshot


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    root = tmp_path_factory.mktemp("hostile")
    save_model(build_model(tiny_config("whisper", k=2)), root / "m")
    save_model(build_model(tiny_config("whisper", "lidlora")), root / "lidlora")
    rows = [
        {"id": f"u{i}", "audio": str(write_audio(root / f"u{i}.wav", 0.6)), "lang": lang, "text": "a b"}
        for i, lang in enumerate(("en", "de"))
    ]
    (root / "test.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    (root / "hyp.jsonl").write_text(
        '{"id": "u0", "lang": "en", "text": "a b"}\n{"id": "u1", "lang": "de", "text": "a"}\n'
    )
    (root / "hyp_null.jsonl").write_text('{"id": "u0", "lang": "en", "text": null}\n')
    (root / "hyp_dup.jsonl").write_text('{"id": "u0", "text": "a"}\n{"id": "u0", "text": "a"}\n')
    (root / "hyp_notext.jsonl").write_text('{"id": "u0", "lang": "en"}\n{"id": "u1", "lang": "de"}\n')
    (root / "hyp_partial.jsonl").write_text('{"id": "u0", "lang": "en", "text": "a b"}\n')
    (root / "empty.jsonl").write_text("")
    (root / "afile").write_text("not a directory\n")
    (root / "adir").mkdir()
    (root / "bad.arpa").write_text("not an arpa file\n")
    (root / "bad.wav").write_bytes(b"RIFF0000WAVEjunk")
    sf.write(str(root / "nan.wav"), np.full(8000, np.nan, dtype=np.float32), 16000, subtype="FLOAT")
    (root / "bad.yaml").write_text("lr: abc\n")
    (root / "list.yaml").write_text("- a\n- b\n")
    shutil.copytree(root / "m", root / "m_cut")
    (root / "m_cut" / "adapters.safetensors").write_bytes(b"\x00" * 12)
    shutil.copytree(root / "m", root / "m_badcfg")
    (root / "m_badcfg" / "config.json").write_text("{")
    (root / "user_dir").mkdir()
    (root / "user_dir" / "notes.txt").write_text("mine")
    return root


def T(root):  # a training command with everything it needs but one bad value
    return [
        "train",
        "--out",
        str(root / "out" / "run"),
        "--train",
        str(root / "test.jsonl"),
        "--vocab",
        "v.json",
        "--backbone",
        "b",
        "--max-steps",
        "2",
        "--k",
        "1",
    ]


CASES = [
    # decode
    ("decode-out-is-input", lambda r: ["decode", r / "test.jsonl", "--model", r / "m", "-o", r / "test.jsonl"], 2),
    ("decode-out-is-dir", lambda r: ["decode", r / "test.jsonl", "--model", r / "m", "-o", r / "adir"], 2),
    (
        "decode-model-is-file",
        lambda r: ["decode", r / "test.jsonl", "--model", r / "afile", "-o", r / "out/o.jsonl"],
        2,
    ),
    ("decode-model-missing", lambda r: ["decode", r / "test.jsonl", "--model", r / "nope", "-o", r / "out/o.jsonl"], 2),
    ("decode-no-model", lambda r: ["decode", r / "test.jsonl", "-o", r / "out/o.jsonl"], 2),
    (
        "decode-model-and-whisper",
        lambda r: ["decode", r / "test.jsonl", "--model", r / "m", "--whisper", "w", "-o", r / "out/o.jsonl"],
        2,
    ),
    (
        "decode-beam-0",
        lambda r: ["decode", r / "u0.wav", "--model", r / "m", "--beam-width", "0", "-o", r / "out/o"],
        2,
    ),
    (
        "decode-window-small",
        lambda r: ["decode", r / "u0.wav", "--model", r / "m", "--window", "0.01", "-o", r / "out/o"],
        2,
    ),
    (
        "decode-window-overlap",
        lambda r: ["decode", r / "u0.wav", "--model", r / "m", "--window", "2", "--overlap", "3", "-o", r / "out/o"],
        2,
    ),
    (
        "decode-batch-0",
        lambda r: ["decode", r / "u0.wav", "--model", r / "m", "--batch-seconds", "0", "-o", r / "out/o"],
        2,
    ),
    (
        "decode-lm-alpha-nan",
        lambda r: ["decode", r / "u0.wav", "--model", r / "m", "--lm-alpha", "nan", "-o", r / "out/o"],
        2,
    ),
    (
        "decode-lm-missing",
        lambda r: ["decode", r / "u0.wav", "--model", r / "m", "--lm", "de=" + str(r / "x.bin"), "-o", r / "out/o"],
        2,
    ),
    (
        "decode-lm-dir",
        lambda r: ["decode", r / "u0.wav", "--model", r / "m", "--lm", "de=" + str(r / "adir"), "-o", r / "out/o"],
        2,
    ),
    ("decode-lm-bad-form", lambda r: ["decode", r / "u0.wav", "--model", r / "m", "--lm", "de", "-o", r / "out/o"], 2),
    (
        "decode-lm-language",
        lambda r: ["decode", r / "u0.wav", "--model", r / "m", "--lm", "xx=" + str(r / "bad.arpa"), "-o", r / "out/o"],
        2,
    ),
    (
        "decode-lm-corrupt",
        lambda r: ["decode", r / "u0.wav", "--model", r / "m", "--lm", "de=" + str(r / "bad.arpa"), "-o", r / "out/o"],
        2,
    ),
    ("decode-mode", lambda r: ["decode", r / "u0.wav", "--model", r / "m", "--mode", "nope", "-o", r / "out/o"], 2),
    ("decode-routing", lambda r: ["decode", r / "u0.wav", "--model", r / "m", "--routing", "x", "-o", r / "out/o"], 2),
    ("decode-decoder", lambda r: ["decode", r / "u0.wav", "--model", r / "m", "--decoder", "x", "-o", r / "out/o"], 2),
    ("decode-device", lambda r: ["decode", r / "u0.wav", "--model", r / "m", "--device", "tpu", "-o", r / "out/o"], 2),
    ("decode-dtype", lambda r: ["decode", r / "u0.wav", "--model", r / "m", "--dtype", "fp8", "-o", r / "out/o"], 2),
    (
        "decode-threads-0",
        lambda r: ["decode", r / "u0.wav", "--model", r / "m", "--threads", "0", "-o", r / "out/o"],
        2,
    ),
    (
        "decode-two-stage-alone",
        lambda r: ["decode", r / "u0.wav", "--model", r / "m", "--mode", "two-stage", "-o", r / "out/o"],
        2,
    ),
    ("decode-lidlora-single", lambda r: ["decode", r / "u0.wav", "--model", r / "lidlora", "-o", r / "out/o"], 2),
    (
        "decode-oracle-no-lang",
        lambda r: ["decode", r / "u0.wav", "--model", r / "m", "--mode", "oracle", "-o", r / "out/o"],
        2,
    ),
    ("decode-missing-input", lambda r: ["decode", r / "none.wav", "--model", r / "m", "-o", r / "out/o"], 2),
    ("decode-unreadable", lambda r: ["decode", r / "bad.wav", "--model", r / "m", "-o", r / "out/bad.jsonl"], 1),
    ("decode-nan-audio", lambda r: ["decode", r / "nan.wav", "--model", r / "m", "-o", r / "out/nan.jsonl"], 1),
    ("decode-corrupt-model", lambda r: ["decode", r / "u0.wav", "--model", r / "m_cut", "-o", r / "out/o"], 2),
    ("decode-bad-config", lambda r: ["decode", r / "u0.wav", "--model", r / "m_badcfg", "-o", r / "out/o"], 2),
    ("decode-empty-manifest", lambda r: ["decode", r / "empty.jsonl", "--model", r / "m", "-o", r / "out/e.jsonl"], 2),
    # lid
    ("lid-out-is-input", lambda r: ["lid", r / "test.jsonl", "--model", r / "m", "-o", r / "test.jsonl"], 2),
    (
        "lid-plot-no-refs",
        lambda r: ["lid", r / "u0.wav", "--model", r / "m", "-o", r / "out/l.jsonl", "--plot", r / "out/p.png"],
        2,
    ),
    ("lid-model-file", lambda r: ["lid", r / "test.jsonl", "--model", r / "afile", "-o", r / "out/l.jsonl"], 2),
    ("lid-no-lid-head", lambda r: ["lid", r / "test.jsonl", "--model", r / "lidlora", "-o", r / "out/l.jsonl"], 2),
    (
        "lid-dtype",
        lambda r: [
            "lid",
            r / "test.jsonl",
            "--model",
            r / "m",
            "--dtype",
            "fp16",
            "--device",
            "cpu",
            "-o",
            r / "out/l.jsonl",
        ],
        2,
    ),
    # score
    ("score-json-is-input", lambda r: ["score", r / "test.jsonl", r / "hyp.jsonl", "--json", r / "hyp.jsonl"], 2),
    ("score-json-dir", lambda r: ["score", r / "test.jsonl", r / "hyp.jsonl", "--json", r / "adir"], 2),
    ("score-null-text", lambda r: ["score", r / "test.jsonl", r / "hyp_null.jsonl"], 2),
    ("score-duplicate", lambda r: ["score", r / "test.jsonl", r / "hyp_dup.jsonl"], 2),
    ("score-no-text", lambda r: ["score", r / "test.jsonl", r / "hyp_notext.jsonl"], 2),
    ("score-missing-hyp", lambda r: ["score", r / "test.jsonl", r / "hyp_partial.jsonl"], 2),
    ("score-odd-files", lambda r: ["score", r / "test.jsonl"], 2),
    ("score-missing-file", lambda r: ["score", r / "test.jsonl", r / "none.jsonl"], 2),
    ("score-systems-names", lambda r: ["score", r / "test.jsonl", r / "hyp.jsonl", "--systems", "a,b"], 2),
    ("score-metric", lambda r: ["score", r / "test.jsonl", r / "hyp.jsonl", "--systems", "a", "--metric", "x"], 2),
    # train
    ("train-lr-nan", lambda r: [*T(r), "--lr", "nan"], 2),
    ("train-lr-negative", lambda r: [*T(r), "--lr", "-1"], 2),
    ("train-head-lr-inf", lambda r: [*T(r), "--head-lr", "inf"], 2),
    ("train-dropout", lambda r: [*T(r), "--lora-dropout", "1"], 2),
    ("train-steps-0", lambda r: [*T(r), "--max-steps", "0"], 2),
    ("train-batch-0", lambda r: [*T(r), "--batch-seconds", "0"], 2),
    ("train-rank-0", lambda r: [*T(r), "--lora-rank", "0"], 2),
    ("train-eval-0", lambda r: [*T(r), "--eval-every", "0"], 2),
    ("train-route-prob", lambda r: [*T(r), "--predicted-route-prob", "2"], 2),
    ("train-model-type", lambda r: [*T(r), "--model-type", "nope"], 2),
    ("train-soft-lidlora", lambda r: [*T(r), "--model-type", "lidlora", "--train-routing", "soft"], 2),
    ("train-routing", lambda r: [*T(r), "--train-routing", "maybe"], 2),
    ("train-lid-head", lambda r: [*T(r), "--lid-head", "x"], 2),
    ("train-freeze-hlora", lambda r: [*T(r), "--freeze-layers", "2"], 2),
    ("train-batching", lambda r: [*T(r), "--batching", "x"], 2),
    ("train-metric", lambda r: [*T(r), "--metric", "x"], 2),
    ("train-schedule", lambda r: [*T(r), "--schedule", "x"], 2),
    (
        "train-out-file",
        lambda r: [
            "train",
            "--out",
            r / "afile",
            "--train",
            r / "test.jsonl",
            "--vocab",
            "v",
            "--backbone",
            "b",
            "--max-steps",
            "2",
            "--k",
            "1",
        ],
        2,
    ),
    ("train-resume-nothing", lambda r: ["train", "--out", r / "adir", "--resume"], 2),
    ("train-config-missing", lambda r: ["train", "--out", r / "out/r", "--config", r / "none.yaml"], 2),
    ("train-config-bad-number", lambda r: ["train", "--out", r / "out/r", "--config", r / "bad.yaml"], 2),
    ("train-config-list", lambda r: ["train", "--out", r / "out/r", "--config", r / "list.yaml"], 2),
    (
        "train-no-vocab",
        lambda r: [
            "train",
            "--out",
            r / "out/r",
            "--train",
            r / "test.jsonl",
            "--vocab",
            r / "none.json",
            "--backbone",
            r / "nope",
            "--max-steps",
            "1",
            "--k",
            "1",
        ],
        2,
    ),
    (
        "train-no-steps",
        lambda r: [
            "train",
            "--out",
            r / "out/r",
            "--train",
            r / "test.jsonl",
            "--vocab",
            "v",
            "--backbone",
            "b",
            "--k",
            "1",
        ],
        2,
    ),
    # normalize, vocab, lm, info, backbone
    ("normalize-out-is-input", lambda r: ["normalize", r / "test.jsonl", "-o", r / "test.jsonl"], 2),
    ("normalize-out-dir", lambda r: ["normalize", r / "test.jsonl", "-o", r / "adir"], 2),
    ("normalize-no-out", lambda r: ["normalize", r / "test.jsonl"], 2),
    (
        "vocab-coverage-missing",
        lambda r: ["prepare", "vocab", r / "test.jsonl", "-o", r / "out/v.json", "--coverage", r / "none.jsonl"],
        2,
    ),
    ("vocab-out-is-input", lambda r: ["prepare", "vocab", r / "test.jsonl", "-o", r / "test.jsonl"], 2),
    ("vocab-out-dir", lambda r: ["prepare", "vocab", r / "test.jsonl", "-o", r / "adir"], 2),
    ("vocab-unit", lambda r: ["prepare", "vocab", r / "test.jsonl", "-o", r / "out/v.json", "--unit", "x"], 2),
    ("vocab-empty", lambda r: ["prepare", "vocab", r / "empty.jsonl", "-o", r / "out/v.json"], 2),
    ("lm-order-1", lambda r: ["lm", "build", r / "test.jsonl", "-o", r / "out/lm", "--order", "1"], 2),
    ("lm-order-50", lambda r: ["lm", "build", r / "test.jsonl", "-o", r / "out/lm", "--order", "50"], 2),
    ("lm-prune", lambda r: ["lm", "build", r / "test.jsonl", "-o", r / "out/lm", "--prune", "abc"], 2),
    ("lm-out-file", lambda r: ["lm", "build", r / "test.jsonl", "-o", r / "afile"], 2),
    ("lm-empty", lambda r: ["lm", "build", r / "empty.jsonl", "-o", r / "out/lm"], 2),
    ("info-file", lambda r: ["info", r / "afile"], 2),
    ("info-missing", lambda r: ["info", r / "nope"], 2),
    ("info-cut-weights", lambda r: ["info", r / "m_cut"], 2),
    ("info-bad-config", lambda r: ["info", r / "m_badcfg"], 2),
    ("ct2-nonempty-target", lambda r: ["backbone", "import-ct2", r / "adir", r / "user_dir"], 2),
    ("ct2-target-file", lambda r: ["backbone", "import-ct2", r / "adir", r / "afile"], 2),
    ("ct2-no-model", lambda r: ["backbone", "import-ct2", r / "adir", r / "out/hf"], 2),
    # usage
    ("usage-misspelt-option", lambda r: ["train", "--modle", "x"], 2),
    ("usage-missing-argument", lambda r: ["decode"], 2),
    ("usage-unknown-command", lambda r: ["trian"], 2),
    ("usage-not-a-number", lambda r: ["train", "--lr", "abc", "--out", "x"], 2),
    ("usage-not-an-int", lambda r: ["train", "--k", "two", "--out", "x"], 2),
]


# The error each case gives (the start of its one line; `{r}` is the world's folder): a case that
# fails for another reason than the one it tests is caught. Exit-1 cases: the skip line on stdout.
EXPECTED = {
    "decode-out-is-input": "error: {r}/test.jsonl: the output would overwrite the input {r}/test.jsonl; choose another name",
    "decode-out-is-dir": "error: {r}/adir: is a directory; give a file name for the output",
    "decode-model-is-file": "error: {r}/afile: not a model directory (RUN_DIR/best holds config.json and the weights)",
    "decode-model-missing": "error: {r}/nope: not a model directory (RUN_DIR/best holds config.json and the weights)",
    "decode-no-model": "error: give --model DIR, --onnx DIR (an export) or --whisper DIR (a Whisper zero-shot run)",
    "decode-model-and-whisper": "error: --whisper DIR decodes zero-shot on its own: give it without --model, --onnx or --lid-model",
    "decode-beam-0": "error: --beam-width 0: must be a finite number in [1, inf]",
    "decode-window-small": "error: --window 0.01: must be a finite number in [1, inf]",
    "decode-window-overlap": "error: --window 2.0 must be longer than --overlap 3.0",
    "decode-batch-0": "error: --batch-seconds 0.0: must be a finite number in (0, inf]",
    "decode-lm-alpha-nan": "error: --lm-alpha nan: must be a finite number in [0, inf]",
    "decode-lm-missing": "error: {r}/x.bin: not found: no language model file (--lm de={r}/x.bin)",
    "decode-lm-dir": "error: {r}/adir: is a directory, not language model file (--lm de={r}/adir)",
    "decode-lm-bad-form": "error: --lm de: expected LANG=PATH, e.g. --lm en=en.bin",
    "decode-lm-language": "error: --lm xx={r}/bad.arpa: 'xx' is not a language code: use ISO 639-1 (en) or ISO 639-3 (yue), optionally with a region (en-IN), or register a normalizer for it",
    "decode-lm-corrupt": "error: {r}/bad.arpa: not a readable KenLM model (ARPA or binary) for --lm de (",
    "decode-mode": "error: unknown mode 'nope': choose single, two-stage or oracle",
    "decode-routing": "error: unknown routing 'x': choose hard, soft, top2",
    "decode-decoder": "error: unknown decoder x: choose greedy or beam",
    "decode-device": "error: --device tpu: not a device (auto, cpu, cuda or cuda:N)",
    "decode-dtype": "error: --dtype fp8: choose auto, fp32, bf16, fp16",
    "decode-threads-0": "error: --threads 0: must be a finite number in [1, inf]",
    "decode-two-stage-alone": "error: two-stage decoding needs --lid-model (a ctc, shared-lora or hlora model)",
    "decode-lidlora-single": "error: a lidlora model has no LID head: decode it with --mode oracle or --mode two-stage",
    "decode-oracle-no-lang": "error: oracle decoding needs a language for u0: use a manifest or --lang",
    "decode-missing-input": "error: {r}/none.wav: no such file or folder",
    "decode-unreadable": "skipped bad: {r}/bad.wav: cannot read audio (",
    "decode-nan-audio": "skipped nan: {r}/nan.wav: has non-finite samples (NaN or Inf); fix or remove the file",
    "decode-corrupt-model": "error: {r}/m_cut/adapters.safetensors: not a readable safetensors file (cut short or corrupt: ",
    "decode-bad-config": "error: {r}/m_badcfg/config.json: not a valid hlora model config (",
    "decode-empty-manifest": "error: {r}/empty.jsonl: no audio to decode (an empty manifest or folder)",
    "lid-out-is-input": "error: {r}/test.jsonl: the output would overwrite the input {r}/test.jsonl; choose another name",
    "lid-plot-no-refs": "error: --plot {r}/out/p.png: the inputs carry no reference language, so there is no confusion to plot",
    "lid-model-file": "error: {r}/afile: not a model directory (RUN_DIR/best holds config.json and the weights)",
    "lid-no-lid-head": "error: a lidlora model has no LID head: decode it with --mode oracle or --mode two-stage",
    "lid-dtype": "error: --dtype fp16 runs on CUDA only: use bf16 or fp32 on the CPU",
    "score-json-is-input": "error: {r}/hyp.jsonl: the --json output would overwrite the input {r}/hyp.jsonl; choose another name",
    "score-json-dir": "error: {r}/adir: is a directory; give a file name for the --json output",
    "score-null-text": "error: {r}/test.jsonl vs {r}/hyp_null.jsonl: {r}/hyp_null.jsonl:1: the text of u0 is null, not a string",
    "score-duplicate": "error: {r}/test.jsonl vs {r}/hyp_dup.jsonl: {r}/hyp_dup.jsonl:2: duplicate hypothesis id u0",
    "score-no-text": "error: {r}/test.jsonl vs {r}/hyp_notext.jsonl: {r}/hyp_notext.jsonl:1: expected a JSON object with id and text ('text')",
    "score-missing-hyp": "error: {r}/test.jsonl vs {r}/hyp_partial.jsonl: ids do not match: 1 reference id(s) without hypothesis (u1...) (--missing-as-empty scores the first as empty)",
    "score-odd-files": "error: give REF HYP pairs (an even number of files)",
    "score-missing-file": "error: {r}/test.jsonl vs {r}/none.jsonl: {r}/none.jsonl: hypothesis file not found",
    "score-systems-names": "error: --systems has 2 names for 1 hypothesis file(s)",
    "score-metric": "error: --metric x: choose mer, cer or wer",
    "train-lr-nan": "error: --lr nan: must be a finite number in (0, inf]",
    "train-lr-negative": "error: --lr -1.0: must be a finite number in (0, inf]",
    "train-head-lr-inf": "error: --head-lr inf: must be a finite number in (0, inf]",
    "train-dropout": "error: --lora-dropout 1.0: must be a finite number in [0, 1)",
    "train-steps-0": "error: --max-steps 0: must be a finite number in [1, inf]",
    "train-batch-0": "error: --batch-seconds 0.0: must be a finite number in (0, inf]",
    "train-rank-0": "error: --lora-rank 0: must be a finite number in [1, inf]",
    "train-eval-0": "error: --eval-every 0: must be a finite number in [1, inf]",
    "train-route-prob": "error: --predicted-route-prob 2.0: must be a finite number in [0, 1]",
    "train-model-type": "error: unknown model type 'nope': choose from ctc, shared-lora, lidlora, hlora, expert, mole, student",
    "train-soft-lidlora": "error: --train-routing soft needs an hlora model (a LID head below routed layers)",
    "train-routing": "error: unknown --train-routing maybe: choose oracle, predicted, soft",
    "train-lid-head": "error: unknown --lid-head x: choose pooled or frame",
    "train-freeze-hlora": "error: --freeze-layers applies to the fully fine-tuned ctc model only",
    "train-batching": "error: unknown batching x: choose mixed or sorted",
    "train-metric": "error: unknown --metric x: choose cer, loss or lid_acc",
    "train-schedule": "error: unknown schedule x: choose linear, cosine or constant",
    "train-out-file": "error: {r}/afile: is a file; --out names the run directory",
    "train-resume-nothing": "error: {r}/adir: nothing to resume (no run was saved there: no train.yaml)",
    "train-config-missing": "error: {r}/none.yaml: config file not found",
    "train-config-bad-number": "error: {r}/bad.yaml: setting lr must be a number, got 'abc'",
    "train-config-list": "error: {r}/list.yaml: expected a mapping of settings",
    "train-no-vocab": "error: {r}/none.json: vocab file not found",
    "train-no-steps": "error: give --max-steps or --epochs",
    "normalize-out-is-input": "error: {r}/test.jsonl: the normalized manifest would overwrite the input {r}/test.jsonl; choose another name",
    "normalize-out-dir": "error: {r}/adir: is a directory; give a file name for the normalized manifest",
    "normalize-no-out": "error: give -o OUT.jsonl to normalize a manifest, or --lang L to normalize one line of text",
    "vocab-coverage-missing": "error: {r}/none.jsonl: coverage manifest not found",
    "vocab-out-is-input": "error: {r}/test.jsonl: the vocabulary would overwrite the input {r}/test.jsonl; choose another name",
    "vocab-out-dir": "error: {r}/adir: is a directory; give a file name for the vocabulary",
    "vocab-unit": "error: --unit x: choose char or bpe",
    "vocab-empty": "error: {r}/empty.jsonl: manifest is empty",
    "lm-order-1": "error: --order 1: choose 2..10 (KenLM's lmplz, as built here)",
    "lm-order-50": "error: --order 50: choose 2..10 (KenLM's lmplz, as built here)",
    "lm-prune": "error: --prune abc: expected comma-separated integers, e.g. 0,0,1",
    "lm-out-file": "error: {r}/afile: is a file; -o names the folder for the language models",
    "lm-empty": "error: {r}/empty.jsonl: no text to build a language model from",
    "info-file": "error: {r}/afile: not a model directory (RUN_DIR/best holds config.json and the weights)",
    "info-missing": "error: {r}/nope: not a model directory (RUN_DIR/best holds config.json and the weights)",
    "info-cut-weights": "error: {r}/m_cut/adapters.safetensors: not a readable safetensors file (cut short or corrupt: ",
    "info-bad-config": "error: {r}/m_badcfg/config.json: not a valid hlora model config (",
    "ct2-nonempty-target": "error: {r}/user_dir: not empty; pass --overwrite to replace the model files in it (others are kept)",
    "ct2-target-file": "error: {r}/afile: is a file; give a directory for the HF model",
    "ct2-no-model": "error: {r}/adir/model.bin: missing; a CTranslate2 Whisper directory has model.bin, config.json, tokenizer.json",
    "usage-misspelt-option": "error: No such option: --modle (Possible options: --compile, --dev, --model-type)",
    "usage-missing-argument": "error: Missing argument 'inputs'.",
    "usage-unknown-command": "error: No such command 'trian'. Did you mean 'train'?",
    "usage-not-a-number": "error: Invalid value for '--lr': Input should be a valid number, unable to parse string as a number",
    "usage-not-an-int": "error: Invalid value for '--k': Input should be a valid integer, unable to parse string as an integer",
}


@pytest.mark.parametrize("name, argv, code", CASES, ids=[c[0] for c in CASES])
def test_hostile_input(world, capsys, monkeypatch, name, argv, code):
    from hlora_cli.cli import main as cli_main

    before = snapshot(world)
    args = [str(a) for a in argv(world)]
    monkeypatch.setattr(sys, "argv", ["hlora", *args])
    monkeypatch.setenv("COLUMNS", "400")
    cli_main._state["debug"] = False
    with pytest.raises(SystemExit) as stop:
        cli_main.main()
    captured = capsys.readouterr()
    err = captured.err
    assert stop.value.code == code, err
    assert "Traceback" not in err
    expected = EXPECTED[name].format(r=world)
    if code == 2:
        lines = err.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith(expected), (expected, err)
    else:
        assert expected in " ".join(captured.out.split()), (expected, captured.out)
    after = snapshot(world)
    changed = {p for p in set(before) | set(after) if before.get(p) != after.get(p) and not p.startswith("out")}
    assert not changed, f"{name} changed {sorted(changed)}"
