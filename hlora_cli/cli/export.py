"""`hlora export`: a trained model as what other tools run (transformers CTC model, peft adapters)."""

from __future__ import annotations

from pathlib import Path

import typer
from rich.console import Console

from hlora_cli.errors import HloraError
from hlora_cli.files import atomic_dir, check_output_dir

app = typer.Typer(help="Export a model: a merged transformers CTC model (hf) or peft adapters (peft).")
console = Console()

MODEL = typer.Argument(..., help="Model directory (RUN_DIR/best).")
OUT = typer.Option(..., "-o", "--out", help="Output directory (made; must not exist unless --overwrite).")
OVERWRITE = typer.Option(False, "--overwrite", help="Replace the output directory once the new one is complete.")


def _load(model_dir: Path, out: Path, overwrite: bool):
    from hlora_cli.model import load_model
    from hlora_cli.model.checkpoint import check_model_dir

    check_model_dir(model_dir)
    if out.resolve() == model_dir.resolve() or model_dir.resolve().is_relative_to(out.resolve()):
        raise HloraError(f"{out}: the export would replace the model directory {model_dir}; choose another -o")
    check_output_dir(out, overwrite)
    return load_model(model_dir)


@app.command("hf")
def hf(
    model_dir: Path = MODEL,
    out: Path = OUT,
    lang: str = typer.Option(None, "--lang", help="The language to export (where LoRA or heads are per language)."),
    overwrite: bool = OVERWRITE,
) -> None:
    """One language as a transformers HubertForCTC / Wav2Vec2ForCTC with its processor: LoRA folded
    into the weights, the language's CTC head as lm_head. Loads with
    `pipeline("automatic-speech-recognition", model=OUT)`."""
    from hlora_cli.export.common import export_language
    from hlora_cli.export.hf import check_hf_exportable, export_hf

    model = _load(model_dir, out, overwrite)
    check_hf_exportable(model)
    export_language(model, lang)  # checked before anything is written
    done: list[str] = []
    atomic_dir(out, lambda tmp: done.append(export_hf(model, lang, tmp)))
    console.print(f"{model.config.model_type} ({done[0]}) -> {out} ({model.backbone.kind} CTC model + processor)")


@app.command("peft")
def peft(model_dir: Path = MODEL, out: Path = OUT, overwrite: bool = OVERWRITE) -> None:
    """The LoRA as peft adapters: OUT/shared (layers below the routing point) and OUT/<lang> (all that
    one language runs, with its CTC head). `PeftModel.from_pretrained(encoder, OUT/<lang>)` loads one
    onto the plain transformers encoder (WhisperModel's get_encoder() for Whisper)."""
    try:
        import peft as _  # noqa: F401
    except ImportError as e:
        raise HloraError("hlora export peft needs peft: pip install 'hlora[export]'") from e
    from hlora_cli.export.peft import export_peft

    model = _load(model_dir, out, overwrite)
    names: list[str] = []
    atomic_dir(out, lambda tmp: names.extend(export_peft(model, tmp)))
    console.print(f"{model.config.model_type}: adapters {', '.join(names)} -> {out}")


@app.command("onnx")
def onnx(
    model_dir: Path = MODEL,
    out: Path = OUT,
    int8: bool = typer.Option(False, "--int8", help="Quantize the weights to int8 (onnxruntime dynamic quantization)."),
    overwrite: bool = OVERWRITE,
) -> None:
    """The single-pass model as ONNX graphs (encoder.onnx to the LID layer, one graph per language after
    it; model.onnx where nothing is routed), decoded with `hlora decode --onnx OUT`."""
    try:
        import onnx as _  # noqa: F401
        import onnxruntime as _ort  # noqa: F401
    except ImportError as e:
        raise HloraError("hlora export onnx needs onnx and onnxruntime: pip install 'hlora[export]'") from e
    from hlora_cli.export.onnx import check_onnx_exportable, export_onnx

    model = _load(model_dir, out, overwrite)
    check_onnx_exportable(model)
    files: list[str] = []
    atomic_dir(out, lambda tmp: files.extend(export_onnx(model, tmp, int8)))
    console.print(f"{model.config.model_type}: {', '.join(files)} -> {out}")
