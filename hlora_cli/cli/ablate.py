"""`hlora ablate`: one HLoRA per k, trained and decoded, in one table and plot."""

from __future__ import annotations

from pathlib import Path

import typer
from rich.console import Console
from rich.markdown import Markdown

from hlora_cli.errors import HloraError
from hlora_cli.experiments.ablate import ablate as run_ablation
from hlora_cli.train.config import load_config


def ablate(
    k: str = typer.Option(..., "--k", help="Comma-separated k (shared lower layers), e.g. 1,3,6,9,11."),
    config: Path = typer.Option(..., "--config", help="Training settings (YAML) shared by every k."),
    dev: str = typer.Option(None, help="Dev manifest (default: dev of the config)."),
    test: str = typer.Option(None, help="Test manifest."),
    out: Path = typer.Option(..., "-o", "--out", help="Folder: k<K>/ runs, ablation.md, .json and .png."),
    max_steps: int = typer.Option(None, help="Override the config's max_steps."),
    device: str = typer.Option("auto", help="Decoding: auto (the GPU when there is one), cpu, cuda or cuda:N."),
    dtype: str = typer.Option("auto", help="Decoding: auto (bf16 where computed natively), fp32, bf16, fp16 (CUDA)."),
) -> None:
    """Train and decode one HLoRA per k (finished k are skipped); write the per-language table and plot."""
    try:
        ks = [int(x) for x in k.split(",") if x.strip()]
    except ValueError as e:
        raise HloraError(f"--k {k}: expected comma-separated integers") from e
    cfg = load_config(config, {"dev": dev, "max_steps": max_steps, "model_type": "hlora", "k": ks[0]})
    if not cfg.dev:
        raise HloraError("ablate needs a dev set: --dev or dev: in the config")
    from hlora_cli.device import check_dtype, resolve_device
    from hlora_cli.infer.options import DecodeOptions

    check_dtype(dtype, resolve_device(device), say=lambda _: None)  # before any training; decoding says it
    options = DecodeOptions(mode="single", device=device, dtype=dtype)
    console = Console()
    results = run_ablation(
        cfg,
        ks,
        out,
        test,
        on_done=lambda r: console.print(
            f"k={r['k']}: dev avg {100 * r['dev']['average']:.1f}%"
            + (f", test avg {100 * r['test']['average']:.1f}%" if "test" in r else "")
        ),
        options=options,
    )
    console.print(Markdown((out / "ablation.md").read_text()))
    console.print(f"{len(results)} k values -> {out / 'ablation.md'}, {out / 'ablation.json'}, {out / 'ablation.png'}")
