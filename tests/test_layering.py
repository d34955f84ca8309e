"""The house stays as scripts/house.py shows it: no import cycle, no import up the layers (data <
model < train / infer / score / export < experiments < cli), and text_normalization standing alone."""

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_no_cycle_no_import_up_the_layers_and_text_normalization_stands_alone():
    r = subprocess.run([sys.executable, str(ROOT / "scripts" / "house.py")], capture_output=True, text=True, check=True)
    lines = r.stdout.splitlines()
    assert "import cycles (module level): 0" in lines
    assert "imports up the layers (module level): 0" in lines
    assert "imports up the layers (inside functions): 0" in lines
    assert "text_normalization modules importing hlora_cli (it stands alone): 0" in lines
    assert int(lines[0].split(": ")[1]) > 80  # it read the package


def test_house_names_an_import_up_the_layers(tmp_path):
    """A copy of the tree with data/ importing model/ is reported, with the arrow."""
    import shutil

    shutil.copytree(ROOT / "hlora_cli", tmp_path / "hlora_cli")
    shutil.copytree(ROOT / "text_normalization", tmp_path / "text_normalization")
    (tmp_path / "scripts").mkdir()
    shutil.copy(ROOT / "scripts" / "house.py", tmp_path / "scripts" / "house.py")
    vocab = tmp_path / "hlora_cli" / "data" / "vocab.py"
    vocab.write_text(vocab.read_text() + "\nfrom hlora_cli.model.readout import READOUTS  # noqa\n")
    r = subprocess.run([sys.executable, str(tmp_path / "scripts" / "house.py")], capture_output=True, text=True)
    assert "imports up the layers (module level): 1\n  hlora_cli.data.vocab -> hlora_cli.model.readout" in r.stdout
