"""One output rule for every command (reliability, round 3): an output is never an input, never
inside a model, backbone or corpus it reads, never an audio file a manifest lists, and an output
directory holds no input. Each case through `main()`: exit 2, one `error:` line naming the file, and
every file byte-identical."""

import json
import shutil

import pytest

from hlora_cli.model import build_model, save_model
from tests.conftest import tiny_config
from tests.data.helpers import write_audio
from tests.helpers import run_main, snapshot


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    root = tmp_path_factory.mktemp("apart")
    save_model(build_model(tiny_config("whisper", k=2)), root / "m")
    rows = [
        {"id": f"en{i}", "audio": str(write_audio(root / "aud" / f"en{i}.wav", 0.6)), "lang": "en", "text": "a b"}
        for i in range(2)
    ]
    (root / "t.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    (root / "x.rejected.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    kd = root / "kd"
    kd.mkdir()
    (kd / "wav.scp").write_text(f"en0 {root / 'aud' / 'en0.wav'}\n")
    (kd / "text").write_text("en0 a b\n")
    folder = root / "f"
    write_audio(folder / "en0.wav", 0.5)
    (folder / "en0.txt").write_text("a b\n")
    (root / "lm").mkdir()
    shutil.copy(root / "t.jsonl", root / "lm" / "en.arpa")  # a manifest that happens to be named so
    (root / "ct2").mkdir()
    for name in ("model.bin", "config.json", "tokenizer.json"):  # what import-ct2 looks for first
        (root / "ct2" / name).write_text("{}")
    return root


CASES = [
    (
        "decode-into-model",
        lambda r: ["decode", r / "t.jsonl", "--model", r / "m", "-o", r / "m" / "config.json"],
        "{r}/m/config.json: the output would be written inside the input {r}/m; choose a path outside it",
    ),
    (
        "decode-over-adapters",
        lambda r: ["decode", r / "t.jsonl", "--model", r / "m", "-o", r / "m" / "adapters.safetensors"],
        "{r}/m/adapters.safetensors: the output would be written inside the input {r}/m; choose a path outside it",
    ),
    (
        "decode-over-listed-audio",
        lambda r: ["decode", r / "t.jsonl", "--model", r / "m", "-o", r / "aud" / "en0.wav"],
        "{r}/aud/en0.wav: the output would overwrite the audio file {r}/aud/en0.wav, which the input lists",
    ),
    (
        "decode-folder-over-its-audio",
        lambda r: ["decode", r / "aud", "--model", r / "m", "-o", r / "aud" / "en1.wav"],
        "{r}/aud/en1.wav: the output would overwrite the audio file {r}/aud/en1.wav, which the input lists",
    ),
    (
        "lid-into-model",
        lambda r: ["lid", r / "t.jsonl", "--model", r / "m", "-o", r / "m" / "config.json"],
        "{r}/m/config.json: the output would be written inside the input {r}/m; choose a path outside it",
    ),
    (
        "lid-plot-into-model",
        lambda r: ["lid", r / "t.jsonl", "--model", r / "m", "-o", r / "out.jsonl", "--plot", r / "m" / "config.json"],
        "{r}/m/config.json: the --plot output would be written inside the input {r}/m; choose a path outside it",
    ),
    (
        "subset-over-input",
        lambda r: ["prepare", "subset", r / "t.jsonl", "--languages", "en", "-o", r / "t.jsonl"],
        "{r}/t.jsonl: the manifest would overwrite the input {r}/t.jsonl; choose another name",
    ),
    (
        "subset-rejects-over-input",
        lambda r: ["prepare", "subset", r / "x.rejected.jsonl", "--languages", "en", "-o", r / "x.jsonl"],
        "{r}/x.rejected.jsonl: the rejected rows' file would overwrite the input {r}/x.rejected.jsonl; "
        "choose another name",
    ),
    (
        "kaldi-over-text",
        lambda r: ["prepare", "kaldi", r / "kd", "--lang", "en", "-o", r / "kd" / "text"],
        "{r}/kd/text: the manifest would overwrite the input {r}/kd/text; choose another name",
    ),
    (
        "folder-over-transcript",
        lambda r: ["prepare", "folder", r / "f", "--lang", "en", "-o", r / "f" / "en0.txt"],
        "{r}/f/en0.txt: the manifest would overwrite the input {r}/f/en0.txt; choose another name",
    ),
    (
        "normalize-over-listed-audio",
        lambda r: ["normalize", r / "t.jsonl", "-o", r / "aud" / "en1.wav"],
        "{r}/aud/en1.wav: the output would overwrite the audio file {r}/aud/en1.wav, which the input lists",
    ),
    (
        "lm-over-its-manifest",
        lambda r: ["lm", "build", r / "lm" / "en.arpa", "-o", r / "lm"],
        "{r}/lm/en.arpa: the language model would overwrite the input {r}/lm/en.arpa; choose another name",
    ),
    (
        "ct2-into-itself",
        lambda r: ["backbone", "import-ct2", r / "ct2", r / "ct2", "--overwrite"],
        "{r}/ct2: the HF model directory would overwrite the input {r}/ct2; choose another name",
    ),
]


@pytest.mark.parametrize("name, argv, message", CASES, ids=[c[0] for c in CASES])
def test_an_output_is_never_an_input(world, name, argv, message):
    before = snapshot(world)
    code, err = run_main(*argv(world))
    assert code == 2 and err.strip() == "error: " + message.format(r=world), err
    assert snapshot(world) == before


def test_a_killed_directory_write_leaves_nothing_after_the_rerun(tmp_path):
    from hlora_cli.files import atomic_dir

    out = tmp_path / "exp"
    (tmp_path / ".exp.k2j4_x9a").mkdir()  # a killed export's half-written folder
    (tmp_path / ".exp.k2j4_x9a" / "model.onnx").write_text("half")
    (tmp_path / ".exp.old.abcdefgh" / "exp").mkdir(parents=True)  # killed between the two renames
    (tmp_path / ".exp.old.abcdefgh" / "exp" / "card.md").write_text("the user's previous export")
    (tmp_path / ".exp.notes").write_text("not ours: kept")
    atomic_dir(out, lambda d: (d / "card.md").write_text("new"))
    assert (out / "card.md").read_text() == "new"
    assert sorted(p.name for p in tmp_path.iterdir()) == [".exp.notes", "exp"]
    # a rerun after the kill that fails before writing still gives the user's export back
    (tmp_path / ".exp.old.abcdefgh" / "exp").mkdir(parents=True)
    (tmp_path / ".exp.old.abcdefgh" / "exp" / "card.md").write_text("previous")
    shutil.rmtree(out)

    def fail(d):
        raise RuntimeError("export failed")

    with pytest.raises(RuntimeError):
        atomic_dir(out, fail)
    assert (out / "card.md").read_text() == "previous"
    assert sorted(p.name for p in tmp_path.iterdir()) == [".exp.notes", "exp"]


def test_an_unwritable_output_folder_is_found_before_any_work(tmp_path, monkeypatch):
    import os as os_module

    from hlora_cli.files import check_output

    locked = tmp_path / "ro"
    locked.mkdir()
    real_access = os_module.access
    monkeypatch.setattr(os_module, "access", lambda p, mode: False if str(p) == str(locked) else real_access(p, mode))
    with pytest.raises(Exception) as e:
        check_output(locked / "sub" / "o.jsonl", [], "output")
    assert (
        str(e.value) == f"{locked / 'sub' / 'o.jsonl'}: {locked} is not writable, so the output cannot be written there"
    )
