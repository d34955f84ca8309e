"""A decode in chunks of about --chunk-seconds of audio, each chunk's results leaving as it
finishes: appended to OUT.partial (made into OUT, OUT.text and OUT.meta.json at the end; `--resume`
goes on after the results already there), or, without an OUT, handed to the caller (printed)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from hlora_cli.errors import HloraError
from hlora_cli.infer.inputs import Item, chunks
from hlora_cli.infer.output import PartialOutput, partial_path, write_meta
from hlora_cli.infer.results import Report, Result

Run = Callable[..., Report]  # run(items, on_progress=...): the Recognizer's, or Whisper zero-shot's


class ChunkedDecode:
    """`items` minus those an interrupted decode into `out` already holds (`resumed` of them)."""

    def __init__(self, items: list[Item], out: Path | None, system: dict, resume: bool) -> None:
        self.out, self.system = out, system
        self.partial = PartialOutput(out, resume, system) if out is not None else None
        self.resumed = len(self.partial.done) if self.partial is not None else 0
        if self.resumed:
            done = self.partial.done_ids
            foreign = done - {it.id for it in items}
            if foreign:  # results of other inputs would end up in OUT beside these
                where = partial_path(out) if partial_path(out).exists() else out
                raise HloraError(
                    f"{where}: the earlier decode holds {len(foreign)} utterance(s) these inputs lack (e.g. "
                    f"'{sorted(foreign)[0]}'): resume with the same inputs, or decode into another -o"
                )
            items = [it for it in items if it.id not in done]
        self.items = items
        self.skipped: list[tuple[str, str]] = []
        self.decoded, self.audio, self.wall = 0, 0.0, 0.0

    def run(
        self,
        run: Run,
        chunk_seconds: float,
        on_progress: Callable[[float], None] | None = None,
        on_results: Callable[[list[Result]], None] | None = None,
    ) -> None:
        """Decode every chunk; its results go to OUT.partial, or (no OUT) to `on_results`."""
        for chunk in chunks(self.items, chunk_seconds):
            report = run(chunk, on_progress=on_progress)
            if self.partial is not None:
                self.partial.append(report.results)
            elif on_results is not None:
                on_results(report.results)
            self.skipped += report.skipped
            self.decoded += len(report.results)
            self.audio += report.audio_seconds
            self.wall += report.wall_seconds

    def finish(self) -> None:
        """OUT, OUT.text and OUT.meta.json made from OUT.partial (nothing without an OUT, or when
        no result was ever written); the audio and wall time are this run's (a resumed run's
        earlier part is not timed)."""
        results = self.partial.finish(self.out) if self.partial is not None else None
        if results is not None:
            report = Report(results, self.skipped, self.audio, self.wall)
            write_meta(report, self.out, {**self.system, "resumed": self.resumed})
