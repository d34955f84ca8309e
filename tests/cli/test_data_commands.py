import json

from hlora_cli.data.manifest import read_manifest
from tests.data.helpers import kaldi_dir, mlc_tree, write_audio
from tests.helpers import hlora


def _table_rows(text: str) -> list[list[str]]:
    """The cells of each body row of the rich tables in a command's output."""
    return [[c.strip() for c in line.strip().strip("│").split("│")] for line in text.splitlines() if "│" in line]


def test_prepare_kaldi_prints_summary_and_writes_rejected(tmp_path):
    d = kaldi_dir(tmp_path)
    r = hlora("prepare", "kaldi", str(d), "-o", str(tmp_path / "m.jsonl"), "--lang-from-id")
    assert r.returncode == 0, r.stderr
    assert "total" in r.stdout and "no entry in segments" in r.stdout
    assert len(read_manifest(tmp_path / "m.jsonl")) == 3
    assert len((tmp_path / "m.rejected.jsonl").read_text().splitlines()) == 2


def test_prepare_kaldi_pipe_error_is_one_line(tmp_path):
    d = kaldi_dir(tmp_path, pipe=True)
    r = hlora("prepare", "kaldi", str(d), "-o", str(tmp_path / "m.jsonl"))
    assert r.returncode == 2 and len(r.stderr.strip().splitlines()) == 1
    assert "is a command pipe" in r.stderr and not (tmp_path / "m.jsonl").exists()


def test_mlc_slm_normalize_vocab_export(tmp_path):
    mlc_tree(tmp_path / "mlc")
    assert hlora("prepare", "mlc-slm", str(tmp_path / "mlc"), "-o", str(tmp_path / "m.jsonl")).returncode == 0
    r = hlora("normalize", str(tmp_path / "m.jsonl"), "-o", str(tmp_path / "n.jsonl"))
    assert r.returncode == 0, r.stderr
    norm = [u.text_norm for u in read_manifest(tmp_path / "n.jsonl")]
    assert norm == ["hello how are you", "i'm fine thanks", "こ ん に ち は", "元 気 で す か"]
    r = hlora(
        "prepare",
        "vocab",
        str(tmp_path / "n.jsonl"),
        "-o",
        str(tmp_path / "vocab.json"),
        "--coverage",
        str(tmp_path / "n.jsonl"),
        "--prefix-tokens",
    )
    assert r.returncode == 0, r.stderr
    # the coverage table: every character of the manifest is in its own inventory
    coverage = {cells[0]: cells[1:3] for cells in _table_rows(r.stdout) if cells[0] in ("en-US", "ja")}
    assert coverage == {"en-US": ["27", "100.00%"], "ja": ["10", "100.00%"]}
    vocab = json.loads((tmp_path / "vocab.json").read_text())
    assert set(vocab["languages"]) == {"en-US", "ja"} and "<ja>" in vocab["shared"]
    assert hlora("prepare", "export-kaldi", str(tmp_path / "n.jsonl"), str(tmp_path / "kaldi")).returncode == 0
    assert (tmp_path / "kaldi" / "segments").read_text().count("\n") == 4


def test_normalize_one_line():
    r = hlora("normalize", "--lang", "ja", "今日はiPhoneを買った。")
    assert r.returncode == 0 and r.stdout == "今 日 は iphone を 買 っ た\n"
    r = hlora("normalize", "--lang", "ko", "--keep-words", "안녕하세요, 여러분!")
    assert r.stdout == "안녕하세요 여러분\n"


def test_folder_and_cv_commands(tmp_path):
    write_audio(tmp_path / "f" / "a.wav", 1.0)
    (tmp_path / "f" / "a.txt").write_text("hola")
    r = hlora("prepare", "folder", str(tmp_path / "f"), "--lang", "es", "-o", str(tmp_path / "f.jsonl"))
    assert r.returncode == 0 and [u.lang for u in read_manifest(tmp_path / "f.jsonl")] == ["es"]
    r = hlora("prepare", "cv", str(tmp_path / "missing.tsv"), "-o", str(tmp_path / "c.jsonl"))
    assert r.returncode == 2 and "missing.tsv: Common Voice TSV not found" in r.stderr


def test_subset_keeps_the_given_languages(tmp_path):
    from hlora_cli.data.manifest import Utterance, write_manifest

    langs = ["en", "de", "ja", "en", "fr", "en", "ko"]
    utts = [Utterance(f"u{i}", str(write_audio(tmp_path / f"{i}.wav", 0.5)), lang, "x") for i, lang in enumerate(langs)]
    write_manifest(tmp_path / "all.jsonl", utts)
    r = hlora("prepare", "subset", str(tmp_path / "all.jsonl"), "--languages", "en,ja", "-o", str(tmp_path / "s.jsonl"))
    assert r.returncode == 0, r.stderr
    assert [(u.id, u.lang) for u in read_manifest(tmp_path / "s.jsonl")] == [
        ("u0", "en"), ("u2", "ja"), ("u3", "en"), ("u5", "en")
    ]  # fmt: skip
    rejected = [json.loads(x) for x in (tmp_path / "s.rejected.jsonl").read_text().splitlines()]
    assert [x["id"] for x in rejected] == ["u1", "u4", "u6"]
    assert all(x["reason"].startswith("unknown language: ") for x in rejected)
