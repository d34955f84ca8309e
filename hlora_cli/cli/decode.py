"""`hlora decode`: transcribe audio files, folders or manifests (single-pass, two-stage, oracle;
greedy or beam search with a KenLM per language), or run a Whisper model zero-shot."""

from __future__ import annotations

from pathlib import Path

import typer
from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

from hlora_cli.device import DTYPE_NAMES
from hlora_cli.errors import HloraError
from hlora_cli.files import check_not_listed
from hlora_cli.infer.inputs import collect_inputs, item_duration
from hlora_cli.infer.options import DecodeOptions, check_sources
from hlora_cli.infer.output import check_no_partial, check_outputs, kaldi_path
from hlora_cli.infer.results import Report
from hlora_cli.infer.runner import Recognizer
from hlora_cli.infer.streaming import ChunkedDecode
from hlora_cli.values import check_number

console = Console()


def parse_lms(values: list[str]) -> dict[str, str]:
    from hlora_cli.data.langs import language_files

    lms = language_files(values, "--lm", "en=en.bin")
    for lang, path in lms.items():
        if not Path(path).is_file():
            what = "is a directory, not" if Path(path).is_dir() else "not found: no"
            raise HloraError(f"{path}: {what} language model file (--lm {lang}={path})")
    return lms


def _total_seconds(items) -> float:
    total = 0.0
    for it in items:
        try:
            total += item_duration(it)
        except HloraError:
            pass
    return total


def _progress(label: str, out: Console) -> Progress:
    columns = [
        TextColumn(f"[bold]{label}"),
        BarColumn(),
        TextColumn("{task.completed:.0f}/{task.total:.0f} s audio"),
        TimeElapsedColumn(),
    ]
    # no redirection: decode prints its results to stdout while the bar runs on stderr
    return Progress(*columns, console=out, transient=True, redirect_stdout=False, redirect_stderr=False)


def run_with_progress(run, items, label: str) -> Report:
    with _progress(label, console) as progress:
        task = progress.add_task(label, total=max(_total_seconds(items), 1e-6))
        return run(items, on_progress=lambda s: progress.advance(task, s))


def print_skipped(skipped: list[tuple[str, str]], out: Console = console) -> None:
    for utt, reason in skipped:
        out.print(f"[yellow]skipped[/] {utt}: {reason}", highlight=False, soft_wrap=True)


def stream(run, items, out: Path | None, system: dict, resume: bool, chunk_seconds: float, label: str) -> None:
    """Decode in chunks (infer/streaming.py) under a progress bar; without -o, print each result
    as an `id<TAB>lang<TAB>text` line as its chunk finishes (messages then go to stderr)."""
    log = console if out is not None else Console(stderr=True)
    job = ChunkedDecode(items, out, system, resume)
    if job.resumed:
        log.print(f"resuming: {job.resumed} utterance(s) already decoded, {len(job.items)} to go", soft_wrap=True)

    def show(results) -> None:
        for r in sorted(results, key=lambda r: r.id):
            print(f"{r.id}\t{r.lang}\t{r.text}", flush=True)

    with _progress(label, log) as progress:
        task = progress.add_task(label, total=max(_total_seconds(job.items), 1e-6))
        job.run(run, chunk_seconds, lambda s: progress.advance(task, s), show)
    job.finish()
    where = f" -> {out}, {kaldi_path(out)}" if out is not None else ""
    print_skipped(job.skipped, log)
    if not job.decoded:
        log.print(f"nothing was decoded ({len(job.skipped)} input(s) skipped){where}", soft_wrap=True)
    else:
        rtf = job.wall / max(job.audio, 1e-9)
        log.print(
            f"{job.decoded} utterances, {job.audio / 3600:.4f} h audio in {job.wall:.1f} s: real-time factor "
            f"{rtf:.4f}{where}",
            soft_wrap=True,
        )
    if job.skipped or (not job.decoded and not job.resumed):
        raise typer.Exit(1)


def decode(
    inputs: list[str] = typer.Argument(..., help="Audio files, folders of audio, or manifests (.jsonl)."),
    out: Path = typer.Option(
        None, "-o", "--out", help="Output JSONL (a Kaldi text file beside it); without it: id, lang, text to stdout."
    ),
    model: Path = typer.Option(None, "--model", help="Model directory (RUN_DIR/best)."),
    mode: str = typer.Option("single", help="single, two-stage or oracle."),
    routing: str = typer.Option(
        "hard", help="single pass: hard (LID argmax, merged fast path), soft (LoRA mixed by LID posterior) or top2."
    ),
    lid_model: Path = typer.Option(
        None, "--lid-model", help="two-stage: the model whose LID picks the language (ctc, shared-lora or hlora)."
    ),
    lang: str = typer.Option(None, "--lang", help="oracle: language for inputs that do not carry one."),
    decoder: str = typer.Option("greedy", help="greedy or beam."),
    beam_width: int = typer.Option(None, help="Beams: CTC prefix beams (default 32), seq2seq beams (default 5)."),
    lm: list[str] = typer.Option([], "--lm", help="LANG=PATH of a KenLM (ARPA or binary); repeatable; implies beam."),
    lm_alpha: float = typer.Option(0.5, help="LM weight."),
    lm_beta: float = typer.Option(1.0, help="Word insertion bonus."),
    batch_seconds: float = typer.Option(60.0, help="Padded audio seconds per batch."),
    window: float = typer.Option(25.0, help="Longer audio is decoded in windows of this many seconds."),
    overlap: float = typer.Option(2.0, help="Overlap between windows (s)."),
    max_tokens_per_second: float = typer.Option(
        DecodeOptions.max_tokens_per_second,
        help="seq2seq and --whisper: tokens written per second of audio at most (+10): cuts repetition loops.",
    ),
    no_repeat_ngram: int = typer.Option(0, help="seq2seq and --whisper: forbid repeating any n-gram of this size."),
    compile_: bool = typer.Option(
        False,
        "--compile",
        help="torch.compile the encoder pass (CUDA graphs on a GPU; bucketed shapes): faster where launches "
        "dominate, after a compile of seconds to minutes (BENCHMARKS.md says where it wins).",
    ),
    loop_ngram: int = typer.Option(
        4,
        help="seq2seq and --whisper: a hypothesis that loops (zlib ratio > 2.4, whisper's test) is generated "
        "again with repeated n-grams of this size forbidden; 0 keeps it.",
    ),
    onnx: Path = typer.Option(None, "--onnx", help="Instead of --model: a directory from `hlora export onnx`."),
    whisper: str = typer.Option(None, "--whisper", help="Instead of --model: an HF Whisper directory, zero-shot."),
    whisper_languages: str = typer.Option(
        None, help="Whisper: restrict language detection to these (comma-separated)."
    ),
    threads: int = typer.Option(None, help="CPU threads (torch)."),
    num_workers: int = typer.Option(
        None,
        help="Processes reading audio ahead of the model (default: 0 on 1-2 cores, else cores/4, at most 4).",
    ),
    device: str = typer.Option("auto", help="auto (the GPU when there is one), cpu, cuda or cuda:N."),
    dtype: str = typer.Option(
        "auto", help="auto (bf16 where the GPU or CPU computes it natively), fp32, bf16 or fp16 (CUDA only): autocast."
    ),
    resume: bool = typer.Option(False, "--resume", help="Continue an interrupted decode into the same -o."),
    chunk_seconds: float = typer.Option(
        600.0, help="Results are written after each chunk of this many seconds of audio (memory holds one chunk)."
    ),
) -> None:
    """Transcribe; writes id, lang, lang_probs, text and word times per utterance (or, without -o,
    prints id, lang and text)."""
    import torch

    if out is None and resume:
        raise HloraError("--resume continues the decode into -o OUT: give the same -o as the interrupted run")
    check_number("--chunk-seconds", chunk_seconds, 0, open_low=True)
    outputs: list[Path] = []
    if out is not None:  # apart from the manifests, every model, backbone and LM (an audio folder may hold OUT)
        read = [p for p in inputs if not Path(p).is_dir()] + [model, lid_model, onnx, whisper]
        outputs = check_outputs(out, [*read, *(x.split("=", 1)[-1] for x in lm or [])])
        if not resume:
            check_no_partial(out)
    check_sources(model, lid_model, onnx, whisper, routing, device, dtype, compile_)
    if onnx is not None:
        device = "cpu"  # onnxruntime's CPU provider: the features stay where they are made
    if threads is not None:
        check_number("--threads", threads, 1)
        torch.set_num_threads(threads)
    else:  # torch's threads and the audio readers within the cores this process may use
        from hlora_cli.data.loader import default_workers
        from hlora_cli.device import fit_threads

        fit_threads(default_workers() if num_workers is None else num_workers)
    from hlora_cli.model.checkpoint import check_model_dir

    for path in (model, lid_model, onnx):
        if path is not None:
            check_model_dir(path)
    lms = parse_lms(lm)
    options = DecodeOptions(
        mode=mode,
        routing=routing,
        decoder="beam" if lms else decoder,
        beam_width=beam_width,
        lms=lms,
        lm_alpha=lm_alpha,
        lm_beta=lm_beta,
        batch_seconds=batch_seconds,
        window=window,
        overlap=overlap,
        lang=lang,
        device=device,
        dtype=dtype,
        num_workers=num_workers,
        max_tokens_per_second=max_tokens_per_second,
        no_repeat_ngram=no_repeat_ngram,
        loop_ngram=loop_ngram,
        compile=compile_,
    )
    items = collect_inputs(inputs)
    check_not_listed(outputs, (it.audio for it in items))
    sources = " ".join(str(Path(p).resolve()) for p in inputs)  # recorded: --resume takes the same inputs
    if whisper is not None:
        from hlora_cli.infer.reading import generation_settings
        from hlora_cli.infer.whisper_zero_shot import WhisperZeroShot

        langs = [x.strip() for x in whisper_languages.split(",")] if whisper_languages else None
        run = WhisperZeroShot(whisper, languages=langs, options=options).run
        system = {"inputs": sources, "whisper": whisper, **generation_settings(options)}
        stream(run, items, out, system, resume, chunk_seconds, "whisper")
        return
    from hlora_cli.model import load_model

    first = load_model(lid_model) if lid_model is not None else None
    if onnx is not None:
        from hlora_cli.infer.onnx_model import OnnxModel

        main_model = OnnxModel(onnx, threads)
    else:
        main_model = load_model(model)
    recognizer = Recognizer(main_model, options, first)
    system = {
        "inputs": sources,
        "model": str(model if onnx is None else onnx),
        **({"onnx": True, "int8": main_model.int8} if onnx is not None else {}),
        "mode": mode,
        "routing": routing,
        "decoder": options.decoder,
        "lid_model": str(lid_model or ""),
        "device": str(recognizer.device),
        "dtype": DTYPE_NAMES[recognizer.dtype],
        **({"compile": True} if compile_ else {}),
        **recognizer.reading.settings(),
    }
    stream(recognizer.run, items, out, system, resume, chunk_seconds, mode)
