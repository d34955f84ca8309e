"""Device and precision of decoding: the model handed to the Recognizer is never changed, options
are frozen, --device / --dtype are checked before work, bf16 autocast on the CPU, and (where a GPU
exists) CUDA decoding equals CPU decoding."""

import dataclasses
import json
import warnings

import pytest
import torch

from hlora_cli import device as device_mod
from hlora_cli.device import check_dtype, cpu_bf16_feature, resolve_device
from hlora_cli.errors import HloraError
from hlora_cli.infer.options import DecodeOptions
from hlora_cli.infer.runner import Recognizer
from tests.infer.conftest import model


def test_the_recognizer_leaves_the_callers_model_unchanged(items):  # noqa: F811
    m = model("hlora", 1)
    before = {n: t.clone() for n, t in m.state_dict().items()}
    r = Recognizer(m, DecodeOptions(mode="single", merge=True, device="cpu"))
    results = r.run(items).results
    assert not m.is_merged and r.model.is_merged and r.model is not m
    after = m.state_dict()
    assert before.keys() == after.keys() and all(torch.equal(before[n], after[n]) for n in before)
    # the caller's model still decodes to the same text, unmerged
    again = Recognizer(m, DecodeOptions(mode="single", merge=False, device="cpu")).run(items).results
    assert [x.text for x in again] == [x.text for x in results]


def test_decode_options_are_frozen():
    with pytest.raises(dataclasses.FrozenInstanceError):
        DecodeOptions().mode = "oracle"


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the error where CUDA is missing")
def test_cuda_without_a_gpu_and_fp16_on_the_cpu_are_clear_errors():
    m = model("hlora", 1)
    with pytest.raises(HloraError, match="^--device cuda: CUDA is not available on this machine$"):
        Recognizer(m, DecodeOptions(device="cuda"))
    with pytest.raises(HloraError, match="^--dtype fp16 runs on CUDA only: use bf16 or fp32 on the CPU$"):
        Recognizer(m, DecodeOptions(device="cpu", dtype="fp16"))
    with pytest.raises(HloraError, match="^--device tpu: not a device"):
        Recognizer(m, DecodeOptions(device="tpu"))
    with pytest.raises(HloraError, match="^--dtype fp8: choose auto, fp32, bf16, fp16$"):
        Recognizer(m, DecodeOptions(device="cpu", dtype="fp8"))


def test_dtype_auto_is_bf16_where_the_cpu_computes_it_and_says_why(monkeypatch):
    cpu, said = torch.device("cpu"), []
    monkeypatch.delenv("HLORA_CPU_BF16")
    monkeypatch.setattr(torch.backends.cpu, "get_cpu_capability", lambda: "AVX512")
    monkeypatch.setattr(device_mod, "cpu_bf16_feature", lambda: "avx512_bf16")
    assert check_dtype("auto", cpu, said.append) == torch.bfloat16
    # the CPU has bf16, but ATEN_CPU_CAPABILITY=avx2 made torch pick kernels that emulate it
    monkeypatch.setattr(torch.backends.cpu, "get_cpu_capability", lambda: "AVX2")
    assert check_dtype("auto", cpu, said.append) == torch.float32
    monkeypatch.setattr(device_mod, "cpu_bf16_feature", lambda: None)
    assert check_dtype("auto", cpu, said.append) == torch.float32
    assert said == [
        "dtype bf16: the CPU has avx512_bf16",
        "dtype fp32: torch runs its AVX2 kernels (ATEN_CPU_CAPABILITY), which emulate bf16",
        "dtype fp32: the CPU has no bf16 instructions (AVX512-BF16 or AMX): bf16 would be emulated",
    ]
    # HLORA_CPU_BF16 overrides what the CPU is found to have, either way
    for value, dtype in (("1", torch.bfloat16), ("0", torch.float32)):
        monkeypatch.setenv("HLORA_CPU_BF16", value)
        assert check_dtype("auto", cpu, said.append) == dtype
        assert said[-1] == f"dtype {'bf16' if value == '1' else 'fp32'}: HLORA_CPU_BF16={value} says so"
    monkeypatch.setenv("HLORA_CPU_BF16", "yes")
    with pytest.raises(HloraError, match="^HLORA_CPU_BF16=yes: set it to 0 or 1$"):
        check_dtype("auto", cpu, said.append)


def test_the_cpu_flags_tell_native_bf16():
    assert cpu_bf16_feature("flags\t: fpu avx2 avx512f avx512_bf16 amx_bf16 amx_tile\n") == "amx_bf16"
    assert cpu_bf16_feature("processor : 0\nflags : fpu avx2 avx512f avx512_vnni avx512_bf16\n") == "avx512_bf16"
    assert cpu_bf16_feature("flags : fpu sse4_2 avx2 fma\n") is None


def test_decode_and_train_say_the_dtype_auto_chose(items, tmp_path, monkeypatch):  # noqa: F811
    from hlora_cli.model import save_model
    from tests.helpers import run_main_output

    model_dir = save_model(model("hlora", 1), tmp_path / "m")
    for value, name in (("1", "bf16"), ("0", "fp32")):
        monkeypatch.setenv("HLORA_CPU_BF16", value)
        out = tmp_path / f"hyp-{name}.jsonl"
        code, _, err = run_main_output("decode", str(items[0].audio), "--model", str(model_dir), "-o", str(out))
        assert code == 0 and f"dtype {name}: HLORA_CPU_BF16={value} says so" in err.splitlines()
        assert json.loads(out.with_suffix(".meta.json").read_text())["dtype"] == name


def test_bf16_autocast_on_the_cpu_gives_the_fp32_languages(items):  # noqa: F811
    m = model("hlora", 1)
    fp32 = Recognizer(m, DecodeOptions(device="cpu")).run(items).results
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        bf16 = Recognizer(m, DecodeOptions(device="cpu", dtype="bf16")).run(items).results
    # a CPU without bf16 instructions emulates it, many times slower: the user is told
    emulated = cpu_bf16_feature() is None
    assert any("no bf16 instructions" in str(w.message) for w in caught) == emulated
    assert [(r.id, r.lang) for r in bf16] == [(r.id, r.lang) for r in fp32]
    for a, b in zip(fp32, bf16, strict=True):
        assert max(abs(a.lang_probs[x] - b.lang_probs[x]) for x in a.lang_probs) < 0.05


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
@pytest.mark.parametrize("mode", ["single", "two-stage", "oracle"])
def test_cuda_decoding_equals_cpu_decoding(items, mode):  # noqa: F811
    from tests.infer.conftest import with_langs

    m, first = model("hlora", 1), model("shared-lora", 2)
    given = with_langs(items, ["en", "de", "fr", "ja", "en"]) if mode == "oracle" else items
    cpu = Recognizer(m, DecodeOptions(mode=mode, device="cpu", dtype="fp32"), first).run(given).results
    gpu = Recognizer(m, DecodeOptions(mode=mode, device="cuda", dtype="fp32"), first).run(given).results
    assert [r.lang for r in gpu] == [r.lang for r in cpu] and [r.text for r in gpu] == [r.text for r in cpu]
    assert next(m.parameters()).device.type == "cpu"  # the caller's model did not move


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_plain_cuda_resolves_to_an_indexed_device_that_set_device_takes():
    for name in ("cuda", "auto"):
        device = resolve_device(name)
        assert device == torch.device("cuda", torch.cuda.current_device())
        torch.cuda.set_device(device)


def test_bucketed_shapes_pad_rows_to_a_power_of_two_and_time_to_whole_seconds():
    from hlora_cli.data.features import Features
    from hlora_cli.model.compiled import bucket, unbucket
    from hlora_cli.model.output import ModelOutput

    mel = Features(torch.ones(3, 80, 250), torch.tensor([250, 120, 7]))
    padded, rows = bucket(mel)
    assert rows == 3 and padded.values.shape == (4, 80, 300) and padded.lengths.tolist() == [250, 120, 7, 300]
    assert torch.equal(padded.values[:3, :, :250], mel.values) and not padded.values[:, :, 250:].any()
    wave = Features(torch.ones(5, 16001), torch.tensor([16001] * 5))
    padded, rows = bucket(wave)
    assert rows == 5 and padded.values.shape == (8, 32000)
    out = ModelOutput(
        torch.zeros(8, 2), torch.arange(8), torch.zeros(8, 10, 4), torch.arange(8), hidden=[torch.ones(8)]
    )
    cut = unbucket(out, 5)
    assert cut.lang_ids.tolist() == [0, 1, 2, 3, 4] and cut.ctc_logprobs.shape == (5, 10, 4) and len(cut.hidden[0]) == 5
    assert cut.route_weights is None and cut.lang_ids.data_ptr() != out.lang_ids.data_ptr()  # copied


@pytest.mark.parametrize("device", ["cpu", *(["cuda"] if torch.cuda.is_available() else [])])
def test_compiled_decoding_equals_eager_decoding(items, device):  # noqa: F811
    m = model("hlora", 1)
    eager = Recognizer(m, DecodeOptions(mode="single", device=device, dtype="fp32")).run(items).results
    compiled = Recognizer(m, DecodeOptions(mode="single", device=device, dtype="fp32", compile=True)).run(items).results
    assert [(r.id, r.lang, r.text) for r in compiled] == [(r.id, r.lang, r.text) for r in eager]
    for a, b in zip(eager, compiled, strict=True):
        assert max(abs(a.lang_probs[x] - b.lang_probs[x]) for x in a.lang_probs) < 1e-3


@pytest.mark.parametrize("device", ["cpu", *(["cuda"] if torch.cuda.is_available() else [])])
def test_compiled_bf16_decoding_merges_routed_layers_into_grouped_matmuls(items, device):  # noqa: F811
    # bf16 on a CPU (or a GPU of compute capability 9-10) has torch's grouped matmul: the compiled
    # pass keeps the merged weights per language (no per-row LoRA) and decodes as the eager pass does
    from hlora_cli.model.lora import grouped_routing

    m = model("hlora", 1)
    grouped = grouped_routing(resolve_device(device), torch.bfloat16)
    assert grouped or device == "cuda"
    eager = Recognizer(m, DecodeOptions(mode="single", device=device, dtype="bf16"))
    rec = Recognizer(m, DecodeOptions(mode="single", device=device, dtype="bf16", compile=True))
    assert all((x.merged_weights is not None) == grouped for x in rec.model.lora_modules() if x.routed)
    compiled, expected = rec.run(items).results, eager.run(items).results
    assert [(r.id, r.lang, r.text) for r in compiled] == [(r.id, r.lang, r.text) for r in expected]
    fp32 = Recognizer(m, DecodeOptions(mode="single", device=device, dtype="fp32", compile=True))
    assert all(x.merged_weights is None for x in fp32.model.lora_modules() if x.routed)  # no kernel: per-row LoRA


def test_compile_on_a_cpu_says_it_was_measured_slower(capsys):
    rec = Recognizer(model("hlora", 1), DecodeOptions(device="cpu", dtype="fp32", compile=True))
    rec._say_dtype()  # said when the first batch runs
    assert capsys.readouterr().err.startswith("note: --compile on a CPU: measured slower than eager decoding there")
    Recognizer(model("hlora", 1), DecodeOptions(device="cpu", dtype="fp32"))._say_dtype()
    assert capsys.readouterr().err == ""


def test_compile_is_refused_where_nothing_would_compile(items, tmp_path_factory):  # noqa: F811
    from tests.helpers import run_main

    model_dir, out = tmp_path_factory.mktemp("m"), str(tmp_path_factory.mktemp("out") / "h.jsonl")
    code, err = run_main("decode", str(items[0].audio), "--onnx", str(model_dir), "--compile", "-o", out)
    assert code == 2 and "drop --routing, --device, --dtype and --compile" in err
    code, err = run_main("decode", str(items[0].audio), "--whisper", str(model_dir), "--compile", "-o", out)
    assert code == 2 and "--compile compiles a --model's encoder pass" in err


def test_the_torch_model_and_an_onnx_export_are_both_decodable_models(tmp_path):
    from hlora_cli.infer.decodable import DecodableModel
    from hlora_cli.infer.onnx_model import OnnxModel
    from hlora_cli.model import save_model
    from tests.helpers import run_cli

    m = model("hlora", 1)
    assert isinstance(m, DecodableModel)
    save_model(m, tmp_path / "m")
    run_cli("export", "onnx", tmp_path / "m", "-o", tmp_path / "onnx")
    onnx = OnnxModel(tmp_path / "onnx")
    assert isinstance(onnx, DecodableModel)
    assert (onnx.languages, onnx.one_language, onnx.has_lid) == (m.languages, False, True)
    assert onnx.config.backbone_mode == m.config.backbone_mode == "ctc"
