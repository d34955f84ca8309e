"""`hlora export`: a trained model as what other tools run (transformers CTC model, peft adapters)."""

from __future__ import annotations

from pathlib import Path

import typer
from rich.console import Console

from hlora_cli.errors import HloraError
from hlora_cli.export.card import model_card
from hlora_cli.files import atomic_dir, check_output_dir

app = typer.Typer(help="Export a model: a merged transformers model (hf: CTC, or Whisper), peft adapters or ONNX.")
console = Console()

MODEL = typer.Argument(..., help="Model directory (RUN_DIR/best).")
OUT = typer.Option(..., "-o", "--out", help="Output directory (made; must not exist unless --overwrite).")
OVERWRITE = typer.Option(False, "--overwrite", help="Replace the output directory once the new one is complete.")


def _need(command: str, *modules: str) -> None:
    """The optional packages an export needs (the `export` extra), or one line saying so."""
    import importlib.util

    missing = [m for m in modules if importlib.util.find_spec(m) is None]
    if missing:
        raise HloraError(f"{command} needs {' and '.join(missing)}: pip install 'hlora[export]'")


def _load(model_dir: Path, out: Path, overwrite: bool, check_seq2seq=None):
    from hlora_cli.model import load_model
    from hlora_cli.model.checkpoint import check_model_dir

    check_model_dir(model_dir)
    check_output_dir(out, overwrite, "export directory", inputs=[model_dir])  # never the model, in it or around it
    from hlora_cli.model.checkpoint import read_config

    config = read_config(model_dir)  # checked before the whole Whisper loads
    if config.seq2seq and check_seq2seq is not None:
        check_seq2seq(config)
    elif config.seq2seq:
        raise HloraError(
            f"{model_dir}: a seq2seq model (Whisper's decoder with LoRA): the peft and onnx exports write CTC "
            "encoders; `hlora export hf --lang LANG` writes it as a transformers Whisper"
        )
    return load_model(model_dir)


def _export_with_card(out: Path, export, model, model_dir: Path, library: str, what: str):
    """Write an export and its model card (README.md) into OUT as one atomic directory: an error
    leaves nothing written. The card's languages: the one exported (what `export` returns, where
    it is a language of the model), else all of the model's."""

    def write(tmp: Path):
        result = export(tmp)
        languages = [result] if result in model.languages else model.languages
        (tmp / "README.md").write_text(model_card(model, model_dir, languages, library, what), encoding="utf-8")
        return result

    return atomic_dir(out, write)


@app.command("hf")
def hf(
    model_dir: Path = MODEL,
    out: Path = OUT,
    lang: str = typer.Option(None, "--lang", help="The language to export (where LoRA or heads are per language)."),
    overwrite: bool = OVERWRITE,
    allow_30s_input: bool = typer.Option(
        False,
        "--allow-30s-input",
        help="seq2seq trained on --encoder-input true-length: export it anyway (transformers' Whisper reads 30 s).",
    ),
) -> None:
    """One language as a transformers model with its processor, every LoRA folded into the weights:
    HubertForCTC / Wav2Vec2ForCTC with the language's CTC head as lm_head, or (seq2seq) a
    WhisperForConditionalGeneration whose generation config forces the language. Loads with
    `pipeline("automatic-speech-recognition", model=OUT)`."""
    from hlora_cli.export.hf import export_hf
    from hlora_cli.export.whisper import check_whisper_exportable, export_whisper

    model = _load(model_dir, out, overwrite, lambda config: check_whisper_exportable(config, allow_30s_input))
    if model.config.seq2seq:
        what = (
            "A transformers WhisperForConditionalGeneration with its processor: every LoRA of its language (encoder"
            " and decoder) folded into the weights; its generation config forces the language."
        )

        code = _export_with_card(
            out, lambda tmp: export_whisper(model, lang, tmp, allow_30s_input), model, model_dir, "transformers", what
        )
        console.print(f"{model.config.model_type} ({code}) -> {out} (Whisper, language forced, + processor)")
        return
    what = (
        f"A transformers {model.backbone.kind} CTC model with its processor: every LoRA of its language folded into"
        ' the weights, its CTC head as lm_head. `pipeline("automatic-speech-recognition", model=DIR)` loads it.'
    )

    code = _export_with_card(out, lambda tmp: export_hf(model, lang, tmp), model, model_dir, "transformers", what)
    console.print(f"{model.config.model_type} ({code}) -> {out} ({model.backbone.kind} CTC model + processor)")


@app.command("peft")
def peft(model_dir: Path = MODEL, out: Path = OUT, overwrite: bool = OVERWRITE) -> None:
    """The LoRA as peft adapters: OUT/shared (layers below the routing point) and OUT/<lang> (all that
    one language runs, with its CTC head). `PeftModel.from_pretrained(encoder, OUT/<lang>)` loads one
    onto the plain transformers encoder (WhisperModel's get_encoder() for Whisper)."""
    _need("hlora export peft", "peft")
    from hlora_cli.export.peft import export_peft

    model = _load(model_dir, out, overwrite)
    what = (
        "peft LoRA adapters for the plain transformers encoder: `shared/` (the layers below the routing point) and"
        " one folder per language (all that language runs, with its CTC head)."
    )

    names = _export_with_card(out, lambda tmp: export_peft(model, tmp), model, model_dir, "peft", what)
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
    _need("hlora export onnx", "onnx", "onnxruntime")
    from hlora_cli.export.onnx import export_onnx

    model = _load(model_dir, out, overwrite)
    files = atomic_dir(out, lambda tmp: export_onnx(model, tmp, int8))
    console.print(f"{model.config.model_type}: {', '.join(files)} -> {out}")
