import json

from tests.helpers import hlora
from tests.train.conftest import make_corpus


def test_ablate_trains_each_k_once_and_writes_table(tiny_backbone, tmp_path):
    manifest, vocab = make_corpus(tmp_path / "data")
    (tmp_path / "run.yaml").write_text(
        f"backbone: {tiny_backbone}\ntrain: {manifest}\nvocab: {vocab}\nlora_rank: 4\nlr: 0.005\nwarmup_steps: 2\n"
        "batch_seconds: 3\nmax_steps: 4\neval_every: 4\nsave_every: 4\ndeterministic: true\n"
    )
    args = [
        "ablate",
        "--k",
        "1,3",
        "--config",
        str(tmp_path / "run.yaml"),
        "--dev",
        str(manifest),
        "--test",
        str(manifest),
        "-o",
        str(tmp_path / "abl"),
    ]
    r = hlora(*args)
    assert r.returncode == 0, r.stderr[-2000:]
    results = json.loads((tmp_path / "abl" / "ablation.json").read_text())
    assert [x["k"] for x in results] == [1, 3]
    assert set(results[0]["dev"]["mer"]) == {"en", "de"} and "test" in results[0]
    md = (tmp_path / "abl" / "ablation.md").read_text()
    assert "| language | k = 1 | k = 3 |" in md and "| **Avg** (pooled) |" in md
    de_row = next(line for line in md.splitlines() if line.startswith("| de |"))
    cells = [c.strip().split(" / ") for c in de_row.strip("|").split("|")[1:]]  # per k: dev / test
    for col, split in enumerate(("dev", "test")):  # bold marks each row's best, and only it
        mers = [x[split]["mer"]["de"] for x in results]
        assert [c[col].startswith("**") for c in cells] == [m == min(mers) for m in mers]
        assert [float(c[col].strip("*")) for c in cells] == [round(100 * m, 1) for m in mers]
    assert (tmp_path / "abl" / "ablation.png").read_bytes()[:4] == b"\x89PNG"
    for k in (1, 3):
        cfg = (tmp_path / "abl" / f"k{k}" / "train.yaml").read_text()
        assert f"k: {k}" in cfg
    # resumable: finished k are not trained again
    stamp = (tmp_path / "abl" / "k1" / "metrics.jsonl").stat().st_mtime_ns
    r = hlora(*args[:2], "1,3,2", *args[3:])
    assert r.returncode == 0, r.stderr[-2000:]
    assert (tmp_path / "abl" / "k1" / "metrics.jsonl").stat().st_mtime_ns == stamp
    assert [x["k"] for x in json.loads((tmp_path / "abl" / "ablation.json").read_text())] == [1, 3, 2]
