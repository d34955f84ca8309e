"""Training progress: a live bar on a terminal; in a log file (nohup, cluster jobs) a plain line
every `every_s` seconds and at the end, with step, loss, LID accuracy, audio-s/s and ETA."""

from __future__ import annotations

import time
from pathlib import Path
from typing import TYPE_CHECKING

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn
from rich.table import Table

from hlora_cli.train.plateau import plateau_warning

if TYPE_CHECKING:
    from hlora_cli.train.trainer import TrainSummary


def _duration(seconds: float) -> str:
    m, s = divmod(int(seconds), 60)
    h, m = divmod(m, 60)
    return f"{h}h{m:02d}m" if h else f"{m}m{s:02d}s"


class TrainProgress:
    def __init__(self, console: Console, total: int, start: int, enabled: bool = True, every_s: float = 30.0) -> None:
        self.console, self.total, self.every_s = console, total, every_s
        self.live = enabled and console.is_terminal
        self.plain = enabled and not console.is_terminal
        self.bar: Progress | None = None
        self.t0 = self.last_print = time.time()
        self.first_step = start
        self.last_t: float | None = None
        self.audio = 0.0  # audio seconds since the last plain line
        self.wait = 0.0  # seconds blocked on data since the last plain line

    def __enter__(self) -> TrainProgress:
        if self.live:
            columns = [
                TextColumn("[bold]train"),
                BarColumn(),
                MofNCompleteColumn(),
                TextColumn("{task.fields[info]}"),
                TimeElapsedColumn(),
                TimeRemainingColumn(),
            ]
            self.bar = Progress(*columns, console=self.console)
            self.bar.__enter__()
            self.task = self.bar.add_task("train", total=self.total, completed=self.first_step, info="")
        return self

    def __exit__(self, *exc) -> None:
        if self.bar is not None:
            self.bar.__exit__(*exc)

    def on_step(self, r: dict) -> None:
        now = time.time()
        if r.get("skipped"):
            info = "skipped (non-finite loss)"
        else:
            rate = ""
            if self.last_t is not None:
                rate = f" {r['audio_s'] / max(1e-6, now - self.last_t):.1f} audio-s/s"
            lid = f" lid {r['lid_acc']:.2f}" if "lid_acc" in r else ""
            info = f"loss {r['loss']:.3f}{lid}{rate}"
            self.audio += r["audio_s"]
            self.wait += r.get("data_wait_s", 0.0)
        self.last_t = now
        if self.bar is not None:
            self.bar.update(self.task, completed=r["step"], info=info)
        elif self.plain and (now - self.last_print >= self.every_s or r["step"] == self.total):
            done = r["step"] - self.first_step
            eta = (now - self.t0) / max(1, done) * (self.total - r["step"])
            speed = self.audio / max(1e-6, now - self.last_print)
            wait = 100 * self.wait / max(1e-6, now - self.last_print)
            lid = f", LID acc {r['lid_acc']:.2f}" if "lid_acc" in r else ""
            loss = "skipped" if r.get("skipped") else f"loss {r['loss']:.3f}{lid}"
            self.console.print(
                f"step {r['step']}/{self.total}: {loss}, {speed:.1f} audio-s/s, waiting for data {wait:.0f}%, "
                f"elapsed {_duration(now - self.t0)}, "
                f"ETA {_duration(eta)}",
                soft_wrap=True,
                highlight=False,
            )
            self.last_print, self.audio, self.wait = now, 0.0, 0.0

    def on_eval(self, r: dict) -> None:
        per = " ".join(f"{k[8:]} {v:.3f}" for k, v in r.items() if k.startswith("dev_cer_") and v is not None)
        head = f"step {r['step']}: dev loss {r['dev_loss']:.3f}, LID {r['dev_lid_acc']:.3f}"
        target = self.bar.console if self.bar is not None else self.console
        target.print(f"{head}, CER {r['dev_cer']:.3f} ({per})", soft_wrap=True, highlight=False)


def print_summary(console: Console, summary: TrainSummary, out: Path) -> None:
    """The table `hlora train` ends with, and the utterances it left out."""
    table = Table(title=f"{out}", show_header=False)
    rows = [
        ("steps", str(summary.steps)),
        ("time", f"{summary.seconds:.0f} s"),
        (f"best {summary.metric}", "n/a (no dev set)" if summary.best is None else f"{summary.best:.4f}"),
        ("trainable / frozen", f"{summary.trainable:,} / {summary.frozen:,}"),
        ("skipped utterances", ", ".join(f"{k}: {v}" for k, v in summary.skipped.items()) or "none"),
        ("unknown characters", str(summary.unknown_chars)),
        ("skipped batches (non-finite)", str(summary.bad_batches)),
        ("model directories", f"{out / 'best'}, {out / 'last'}"),
    ]
    for key, value in rows:
        table.add_row(key, value)
    console.print(table)
    for utt, reason in summary.unreadable.items():
        console.print(f"[yellow]left out[/] {utt}: {reason}", soft_wrap=True, highlight=False)
    warn = Console(stderr=True, quiet=console.quiet)
    for lang, ratio in summary.plateau.items():
        warn.print(f"[bold red]{plateau_warning(lang, ratio, summary.steps)}[/]", soft_wrap=True, highlight=False)
