"""`hlora lid`: language and posteriors per utterance from a model's LID head."""

from __future__ import annotations

from pathlib import Path

import typer

from hlora_cli.cli.decode import console, print_skipped, run_with_progress
from hlora_cli.errors import HloraError
from hlora_cli.files import check_not_listed, check_output
from hlora_cli.infer.inputs import collect_inputs
from hlora_cli.infer.options import DecodeOptions
from hlora_cli.infer.output import check_outputs, write_results
from hlora_cli.infer.runner import Recognizer


def lid(
    inputs: list[str] = typer.Argument(..., help="Audio files, folders, or manifests (with `lang` for accuracy)."),
    model: Path = typer.Option(..., "--model", help="A model that tells the language: hlora, shared-lora or ctc."),
    out: Path = typer.Option(..., "-o", "--out", help="Output JSONL: id, lang, lang_probs."),
    batch_seconds: float = typer.Option(60.0),
    plot: Path = typer.Option(None, help="PNG of the confusion matrix (needs references)."),
    device: str = typer.Option("auto", help="auto (the GPU when there is one), cpu, cuda or cuda:N."),
    dtype: str = typer.Option(
        "auto", help="auto (bf16 where the GPU or CPU computes it natively), fp32, bf16 or fp16 (CUDA only): autocast."
    ),
    num_workers: int = typer.Option(
        None,
        help="Processes reading audio ahead of the model (default: 0 on 1-2 cores, else cores/4, at most 4).",
    ),
) -> None:
    """Identify the language of each utterance; with references, accuracy and a confusion matrix."""
    from hlora_cli.model import load_model
    from hlora_cli.score.metrics import lid_confusion
    from hlora_cli.score.report import plot_confusion

    read = [p for p in inputs if not Path(p).is_dir()] + [model]
    outputs = check_outputs(out, read, meta=False)
    if plot is not None:
        outputs.append(check_output(plot, [*read, *outputs], "--plot output"))
    from hlora_cli.model.checkpoint import check_model_dir

    check_model_dir(model)
    from hlora_cli.data.loader import default_workers
    from hlora_cli.device import fit_threads

    fit_threads(default_workers() if num_workers is None else num_workers)
    options = DecodeOptions(
        mode="single", batch_seconds=batch_seconds, device=device, dtype=dtype, num_workers=num_workers
    )
    items = collect_inputs(inputs)
    check_not_listed(outputs, (it.audio for it in items))
    if plot is not None and not any(it.lang for it in items):
        raise HloraError(f"--plot {plot}: the inputs carry no reference language, so there is no confusion to plot")
    m = load_model(model)
    recognizer = Recognizer(m, options)
    report = run_with_progress(recognizer.identify, items, "lid")
    write_results(report.results, out)
    refs = {it.id: it.lang for it in items if it.lang}
    console.print(f"{len(report.results)} utterances -> {out}")
    if refs:
        pairs = [(refs[r.id], r.lang) for r in report.results if r.id in refs]
        confusion, accuracy = lid_confusion(pairs)
        correct = round(accuracy * len(pairs))
        console.print(f"LID accuracy {correct}/{len(pairs)} = {100 * accuracy:.1f}%")
        langs = sorted({h for row in confusion.values() for h in row} | set(confusion))
        console.print(
            "confusion (rows: reference, columns: predicted)\n" + "ref\\hyp " + " ".join(f"{x:>5}" for x in langs)
        )
        for ref in sorted(confusion):
            console.print(f"{ref:>7} " + " ".join(f"{confusion[ref].get(h, 0):>5}" for h in langs))
        if plot:
            plot_confusion(confusion, plot)
    if report.skipped:
        print_skipped(report.skipped)
        raise typer.Exit(1)
