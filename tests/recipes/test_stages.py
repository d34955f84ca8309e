"""recipes/utils/stages.sh (every recipe's options and stages) and recipes/tts_ml/local/results.py
(its RESULTS files, written from the stages' tables and the options the run took)."""

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

SCRIPT = """
set -euo pipefail
stage=1; stop_stage=8; langs="en de"; train=200; batch_seconds=16; smoke=false
. "{root}/recipes/utils/stages.sh"
recipe_options stage stop_stage langs train batch_seconds smoke
preset_smoke() {{ langs="en"; train=6; }}
parse_options "$@"
py={py} write_options "{out}"
for n in 1 2 3; do if want "$n"; then echo "stage $n"; fi; done
"""


def run(tmp_path: Path, *args: str) -> subprocess.CompletedProcess:
    script = tmp_path / "run.sh"
    script.write_text(SCRIPT.format(root=ROOT, py=sys.executable, out=tmp_path / "options.json"))
    return subprocess.run(["bash", str(script), *args], capture_output=True, text=True)


def test_options_set_variables_and_a_preset_yields_to_later_options(tmp_path):
    r = run(tmp_path, "--stop-stage", "2", "--smoke", "--train", "9", "--batch-seconds", "5")
    assert r.returncode == 0, r.stderr
    assert r.stdout.split("\n")[:2] == ["stage 1", "stage 2"]
    assert json.loads((tmp_path / "options.json").read_text()) == {
        "stage": "1",
        "stop_stage": "2",
        "langs": "en",  # the preset's
        "train": "9",  # given after --smoke: it wins
        "batch_seconds": "5",
        "smoke": "true",
    }
    r = run(tmp_path, "--train", "3", "--smoke", "--langs", "fr es")
    assert json.loads((tmp_path / "options.json").read_text())["train"] == "6"  # the preset, given later
    assert json.loads((tmp_path / "options.json").read_text())["langs"] == "fr es"


def test_unknown_options_and_missing_values_are_one_line_errors(tmp_path):
    r = run(tmp_path, "--bogus", "1")
    assert r.returncode == 2
    assert r.stderr.strip().endswith(
        "unknown option --bogus (options: --stage --stop-stage --langs --train --batch-seconds --smoke )"
    )
    r = run(tmp_path, "--train")
    assert r.returncode == 2 and r.stderr.strip().endswith("--train needs a value")
    r = run(tmp_path, "stray")
    assert r.returncode == 2 and "unknown option stray" in r.stderr
    r = run(tmp_path, "--smoke", "yes")  # a flag takes true or false only: yes is an option that is not one
    assert r.returncode == 2 and "unknown option yes" in r.stderr


def test_a_flag_given_false_calls_no_preset(tmp_path):
    r = run(tmp_path, "--smoke", "false", "--stop-stage", "1")
    assert r.returncode == 0, r.stderr
    options = json.loads((tmp_path / "options.json").read_text())
    assert (options["smoke"], options["langs"], options["train"]) == ("false", "en de", "200")


def tts_exp(tmp_path: Path, experts: bool) -> Path:
    exp = tmp_path / "exp"
    tables = {
        "decode_test/table.md": "| system | MER |\n| hlora | 10.0 |",
        "decode_real/table.md": "| real | 50.0 |",
        "ablate/ablation.md": "| k | 1 |",
        "long/table.md": "| long | 12.0 |",
    }
    if experts:
        tables |= {
            "decode_test/experts/table.md": "x",
            "decode_test/experts/table_mer.md": "| mer |",
            "decode_test/experts/table_cer.md": "| cer |",
            "decode_test/experts/add_language.md": "| add |",
        }
    for name, text in tables.items():
        (exp / name).parent.mkdir(parents=True, exist_ok=True)
        (exp / name).write_text(text + "\n")
    (exp / "real.jsonl").write_text('{"id": "a"}\n{"id": "b"}\n\n')
    options = dict(
        backbone="/wb", langs="en de ja", train="6", dev="2", test="3", ks="1 3", main_k="3", steps="4",
        batch_seconds="30", lr="5e-4", head_lr="5e-3", ctc_lr="1e-4", bpe_size="30", expert_rank="4",
        fuse_steps="2", student_steps="4",
    )  # fmt: skip
    (exp / "options.json").write_text(json.dumps(options))
    return exp


def test_tts_ml_results_are_built_from_the_tables_and_the_options(tmp_path):
    script = ROOT / "recipes" / "tts_ml" / "local" / "results.py"
    exp = tts_exp(tmp_path, experts=False)
    out = tmp_path / "RESULTS.md"
    r = subprocess.run([sys.executable, str(script), "main", str(exp), str(out)], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    text = out.read_text()
    assert "per language 6 train / 2 dev / 3 test\nutterances (test voices never used in training); 4 training" in text
    assert '--ks "1 3" --main-k 3 --steps 4 --batch-seconds 30 --lr 5e-4 --head-lr 5e-3\n--ctc-lr 1e-4' in text
    assert "## Real clips (../shared/data/real) in the trained languages (2 of 20;" in text
    assert "## TTS test set\n\n| system | MER |\n| hlora | 10.0 |\n\n## Real clips" in text
    assert "LoRA language experts" not in text and text.endswith("| long | 12.0 |\n")
    exp = tts_exp(tmp_path / "b", experts=True)
    subprocess.run([sys.executable, str(script), "main", str(exp), str(out)], check=True, capture_output=True)
    text = out.read_text()
    assert "the MoLE of 2\nlanguages' experts" in text and text.endswith("| cer |\n\n| add |\n")
    (exp / "long" / "table.md").unlink()
    r = subprocess.run([sys.executable, str(script), "main", str(exp), str(out)], capture_output=True, text=True)
    missing = exp / "long" / "table.md"
    assert r.returncode == 1 and r.stderr.strip() == f"{missing}: no such table; run the stage that writes it first"
    assert out.read_text() == text  # the earlier RESULTS stays whole


def test_tts_ml_seq2seq_and_export_results_hold_their_stages_tables(tmp_path):
    script = ROOT / "recipes" / "tts_ml" / "local" / "results.py"
    exp = tmp_path / "exp"
    decode = exp / "seq2seq" / "decode"
    for name, text in {
        "test/table.md": "| s2s test |",
        "real/table.md": "| s2s real |",
        "test/loops.md": "| loops |",
        "test/export.md": "| export test |",
        "real/export.md": "| export real |",
    }.items():
        (decode / name).parent.mkdir(parents=True, exist_ok=True)
        (decode / name).write_text(text + "\n")
    options = dict(
        backbone="/wb", langs="en de", s2s_input="true-length", s2s_steps="60", expert_rank="64", main_l1="3",
        s2s_lr="5e-4", batch_seconds="16",
    )  # fmt: skip
    (exp / "options.json").write_text(json.dumps(options))
    for kind in ("seq2seq", "export"):
        out = tmp_path / f"{kind}.md"
        subprocess.run([sys.executable, str(script), kind, str(exp), str(out)], check=True, capture_output=True)
    s2s = (tmp_path / "seq2seq.md").read_text()
    assert "true-length; 60 steps per model (MoLE: 21, fusion weights and router only);" in s2s
    assert f'--exp {exp} --langs "en de" --stage 9 --stop-stage 9\n--s2s-steps 60 --s2s-lr 5e-4' in s2s
    assert s2s.endswith("## Repetition loops: Whisper-base zero-shot on the TTS test set\n\n| loops |\n")
    export = (tmp_path / "export.md").read_text()
    assert "(encoder input: true-length), greedy" in export and export.endswith("## Real clips\n\n| export real |\n")
