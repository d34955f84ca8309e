"""Batched inference with the model core in the three modes:

    single    : HLoRA routes by its own LID in one pass (a baseline decodes with its shared head)
    two-stage : another model's LID head picks the language, then this model decodes with it
    oracle    : the language is given (manifest or --lang)

Single pass routes hard (the LID's argmax: merged per-language weights, bare-backbone speed),
soft (every language's LoRA weighted by the LID posterior) or top2. Utterances longer than one
window are decoded in overlapping windows and stitched; their language is decided once per
recording from the windows' averaged LID posteriors. The model runs on `device` under autocast
at `dtype`; every result leaves the device through `.cpu()`."""

from __future__ import annotations

import copy
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from hlora_cli.data.audio import SAMPLE_RATE, audio_info
from hlora_cli.data.batching import duration_batches
from hlora_cli.data.langs import resolve_language
from hlora_cli.data.loader import Job, Segment, default_workers, load_in_background
from hlora_cli.device import autocast, check_dtype, resolve_device, say_on_stderr
from hlora_cli.errors import HloraError
from hlora_cli.infer.decodable import DecodableModel
from hlora_cli.infer.inputs import Item, item_duration
from hlora_cli.infer.long_audio import Window
from hlora_cli.infer.options import ROUTING_FLAGS, DecodeOptions
from hlora_cli.infer.reading import Reading, reading_for
from hlora_cli.infer.results import Report, Result
from hlora_cli.model import ModelOutput
from hlora_cli.model.backbone import Features
from hlora_cli.model.compiled import CompiledForward


class Recognizer:
    """Decoding with a model (and, two-stage, a first-stage LID model). The models handed in are
    never changed: they are copied before being merged or moved to the device."""

    def __init__(self, model: DecodableModel, options: DecodeOptions, lid_model: DecodableModel | None = None) -> None:
        if options.mode == "two-stage" and lid_model is None:
            raise HloraError("two-stage decoding needs --lid-model (a ctc, shared-lora or hlora model)")
        if options.mode == "single" and not model.has_lid:
            raise HloraError("a lidlora model has no LID head: decode it with --mode oracle or --mode two-stage")
        if options.mode == "two-stage" and not lid_model.has_lid:
            raise HloraError("the --lid-model has no LID: use a ctc, shared-lora or hlora model")
        if options.mode == "two-stage" and len(model.languages) > 1:
            missing = sorted(set(model.languages) - set(lid_model.languages))
            if lid_model.one_language or missing:  # it would route every utterance to what it knows
                raise HloraError(
                    f"the --lid-model tells only {', '.join(lid_model.languages)} apart, the model decodes "
                    f"{', '.join(model.languages)}: give a first stage whose LID covers every language of the model"
                )
        self.device = resolve_device(options.device)
        onnx = hasattr(model, "sessions")  # an OnnxModel: onnxruntime computes in the graph's own precision
        # said when the first batch runs: an error found before any work stays the only line printed
        self._dtype_note: list[str] = []
        self.dtype = torch.float32 if onnx else check_dtype(options.dtype, self.device, say=self._dtype_note.append)
        self._compiled: dict[int, CompiledForward] = {}  # id of a ready model -> its compiled forward
        if options.compile and self.device.type == "cpu":
            self._dtype_note.append(
                "note: --compile on a CPU: measured slower than eager decoding there (bench/deploy_speed.py "
                "--compile, BENCHMARKS.md) after a long first compile; it is meant for GPUs (CUDA graphs)"
            )
        self.model, self.lid_model = self._ready(model, options), self._ready(lid_model, options)
        self.opt = options
        # Whisper's encoder takes 30 s at most (either model's, two-stage); 1 s spare for framing
        limits = [m.backbone.max_seconds for m in (model, lid_model) if m is not None and m.backbone.max_seconds]
        self.window = min([options.window, *(limit - 1 for limit in limits)])
        self.reading: Reading = reading_for(self.model, options, self.device, self.dtype)  # CTC heads or a decoder
        self.workers = default_workers() if options.num_workers is None else options.num_workers
        # shorter audio gives no frame: skipped with its file named (either model's, two-stage)
        self.min_samples = max(m.backbone.frontend.min_samples for m in (model, lid_model) if m is not None)

    def _ready(self, model: DecodableModel | None, options: DecodeOptions) -> DecodableModel | None:
        """An eval-mode copy on the device, merged if asked (the caller's model stays as it was)."""
        if model is None or not isinstance(model, torch.nn.Module):  # None, or an ONNX model (infer/onnx_model.py)
            return model
        if options.merge or self.device != next(model.parameters()).device:
            model = copy.deepcopy(model)
        model = model.eval().to(self.device)
        if options.merge:  # compiled: routed LoRA merged only where one grouped matmul runs them (model/compiled.py)
            routed = not options.compile or model.merges_grouped(self.device, self.dtype)
            model.merge(routed=routed, dtype=self.dtype)
        if options.compile:
            self._compiled[id(model)] = CompiledForward(model, self.device)
        return model

    def _say_dtype(self) -> None:
        while self._dtype_note:
            say_on_stderr(self._dtype_note.pop(0))

    def _forward(self, model: DecodableModel, feats: Features, routing_mode: str, langs: torch.Tensor | None = None):
        self._say_dtype()
        compiled = self._compiled.get(id(model))
        if compiled is None:
            with autocast(self.device, self.dtype):
                return model(feats.to(self.device, non_blocking=True), routing_mode, langs)
        with autocast(self.device, self.dtype):
            return compiled(feats.to(self.device, non_blocking=True), routing_mode, langs)

    def _identify(self, model: DecodableModel, feats: Features) -> np.ndarray:
        self._say_dtype()
        with autocast(self.device, self.dtype):
            return model.identify(feats.to(self.device, non_blocking=True)).float().exp().cpu().numpy()

    # --- language ------------------------------------------------------------------------
    @staticmethod
    def _language(
        probs: dict[int, list[tuple[float, np.ndarray]]], lid_langs: list[str]
    ) -> dict[int, tuple[str, dict[str, float]]]:
        """Duration-weighted mean of window posteriors -> (language, posteriors) per recording."""
        out = {}
        for i, parts in probs.items():
            weights = np.array([d for d, _ in parts])
            mean = (np.stack([p for _, p in parts]) * weights[:, None]).sum(0) / weights.sum()
            out[i] = (
                lid_langs[int(mean.argmax())],
                {lang: round(float(p), 4) for lang, p in zip(lid_langs, mean, strict=True)},
            )
        return out

    # --- decoding ------------------------------------------------------------------------
    def _batches(self, wins: list[Window]) -> list[list[Window]]:
        """Windows in duration order, (longest x count) <= --batch-seconds, as training batches."""
        lengths = [w.end - w.start for w in wins]
        return [[wins[i] for i in b] for b in duration_batches(lengths, self.opt.batch_seconds, 0, 0, shuffle=False)]

    def _loaded(
        self, items: list[Item], batches: list[list[Window]], model: DecodableModel, failed: dict[int, str]
    ) -> Iterator[tuple[list[Window], Features | None, list[Window]]]:
        """For each batch of windows: the batch, the features (`model`'s frontend) of its windows
        whose audio decoded, and those windows; read ahead by --num-workers processes. A window
        whose data does not decode (a header that reads, data that does not) marks its recording
        in `failed`; the recording's windows not yet read are left out from then on."""

        def job(full: list[Window]) -> Job:
            wanted = [w for w in full if w.item not in failed]
            segments = []
            for w in wanted:
                it = items[w.item]
                offset = it.start or 0.0
                segments.append(Segment(it.audio, offset + w.start, offset + w.end))
            return Job((full, wanted), segments)

        frontend = model.backbone.frontend
        for loaded in load_in_background(map(job, batches), frontend, self.workers, self.device.type == "cuda"):
            full, wanted = loaded.key
            for pos, reason in loaded.failed.items():
                failed.setdefault(wanted[pos].item, reason)
            yield full, loaded.feats, [wanted[p] for p in loaded.kept]

    def _usable(self, items: list[Item]) -> tuple[list[int], list[tuple[str, str]]]:
        """Indices of items whose audio can be read (header), and (id, reason) for the others."""
        ok, skipped = [], []
        for i, it in enumerate(items):
            try:
                duration = item_duration(it)  # (refuses a FIFO before anything opens it)
                if duration <= 0:
                    raise HloraError(f"{it.audio}: empty segment")
                if duration * SAMPLE_RATE < self.min_samples:
                    raise HloraError(
                        f"{it.audio}: {duration * 1000:.0f} ms of audio, shorter than one frame of the encoder "
                        f"({self.min_samples} samples)"
                    )
                if it.end is not None:  # said here with the segment's times, not a window's
                    total = audio_info(it.audio).duration
                    if it.end > total + 0.01:
                        raise HloraError(
                            f"{it.audio}: the segment {it.start or 0.0:.2f}-{it.end:.2f} s ends past the end of the "
                            f"file ({total:.2f} s)"
                        )
                ok.append(i)
            except HloraError as e:
                skipped.append((it.id, str(e)))
        return ok, skipped

    def _lid_pass(
        self,
        items: list[Item],
        wins: list[Window],
        model: DecodableModel,
        failed: dict[int, str],
        on_progress: Callable[[float], None] | None = None,
    ) -> dict[int, list[tuple[float, np.ndarray]]]:
        probs: dict[int, list[tuple[float, np.ndarray]]] = {}
        for batch, feats, kept in self._loaded(items, self._batches(wins), model, failed):
            if kept:
                for w, p in zip(kept, self._identify(model, feats), strict=True):
                    probs.setdefault(w.item, []).append((w.end - w.start, p))
            if on_progress:
                on_progress(sum(w.end - w.start for w in batch))
        return probs

    @torch.no_grad()
    def identify(self, items: list[Item], on_progress: Callable[[float], None] | None = None) -> Report:
        """Language ID only, per recording (windows averaged): the LID model's in two-stage mode,
        this model's otherwise. Runs the encoder only up to the LID layer."""
        start = time.time()
        ok, skipped = self._usable(items)
        model = self.lid_model if self.opt.mode == "two-stage" else self.model
        wins = self._windows(items, ok)
        failed: dict[int, str] = {}
        decided = self._language(self._lid_pass(items, wins, model, failed, on_progress), model.languages)
        ok, skipped = self._drop_failed(items, ok, skipped, failed)
        results = [Result(items[i].id, *decided[i], "", [], items[i].duration) for i in ok]
        return Report(results, skipped, sum(items[i].duration for i in ok), time.time() - start)

    def _windows(self, items: list[Item], ok: list[int]) -> list[Window]:
        return [w for i in ok for w in self.reading.windows(i, items[i].duration, self.window)]

    @staticmethod
    def _drop_failed(
        items: list[Item], ok: list[int], skipped: list[tuple[str, str]], failed: dict[int, str]
    ) -> tuple[list[int], list[tuple[str, str]]]:
        """Recordings with a window that did not decode are skipped as a whole (no partial text)."""
        return [i for i in ok if i not in failed], skipped + [(items[i].id, failed[i]) for i in ok if i in failed]

    @torch.no_grad()
    def run(self, items: list[Item], on_progress: Callable[[float], None] | None = None) -> Report:
        start = time.time()
        ok, skipped = self._usable(items)
        wins = self._windows(items, ok)
        failed: dict[int, str] = {}
        known, decided = self._decide_languages(items, ok, wins, failed)
        decoded = self._decode_windows(items, wins, known, decided, failed, on_progress)
        decided.update(self._language(decoded.lid, self.model.languages) if decoded.lid else {})
        ok, skipped = self._drop_failed(items, ok, skipped, failed)
        results = [self._result(items[i], known.get(i), decided.get(i), decoded, i) for i in ok]
        return Report(results, skipped, sum(items[i].duration for i in ok), time.time() - start)

    def _decide_languages(
        self, items: list[Item], ok: list[int], wins: list[Window], failed: dict[int, str]
    ) -> tuple[dict[int, str], dict[int, tuple[str, dict[str, float]]]]:
        """Before decoding: (given languages (oracle), languages decided per recording by a LID
        pass). The LID pass runs for two-stage (the first-stage model) and, single pass, for
        recordings of several windows, so that all their windows take one language; a recording of
        one window is routed in the decoding pass by its own LID."""
        mode = self.opt.mode
        known: dict[int, str] = {}
        if mode == "oracle":
            for i in ok:
                code = items[i].lang or self.opt.lang
                if code is None:
                    raise HloraError(f"oracle decoding needs a language for {items[i].id}: use a manifest or --lang")
                resolved = resolve_language(code, self.model.languages)  # `en-US` rows -> `en`, as training
                if resolved is None:
                    where = f"{items[i].source}: " if items[i].source else ""
                    raise HloraError(
                        f"{where}{items[i].id}: its language {code} has no LoRA/head in this model (it knows "
                        f"{', '.join(self.model.languages)}); oracle decoding needs the utterance's language"
                    )
                known[i] = resolved
        multi = {w.item for w in wins if w.index > 0}
        if mode == "oracle" or (mode == "single" and not multi):
            return known, {}
        lid_model = self.lid_model if mode == "two-stage" else self.model
        wanted = [w for w in wins if mode == "two-stage" or w.item in multi]
        probs = self._lid_pass(items, wanted, lid_model, failed)
        return known, (self._language(probs, lid_model.languages) if probs else {})

    def _decode_windows(
        self,
        items: list[Item],
        wins: list[Window],
        known: dict[int, str],
        decided: dict[int, tuple[str, dict[str, float]]],
        failed: dict[int, str],
        on_progress: Callable[[float], None] | None,
    ) -> _Decoded:
        """CTC log-probs of every window, routed by the given or decided language where there is
        one (oracle routing) and by the model's own LID otherwise (single pass); the two kinds are
        batched apart."""
        model, decoded = self.model, _Decoded()

        def fixed(w: Window) -> str | None:
            return known.get(w.item) or (decided[w.item][0] if w.item in decided else None)

        groups = [[w for w in wins if fixed(w) is not None], [w for w in wins if fixed(w) is None]]
        batches = [b for group in groups for b in self._batches(group)]
        for full, feats, batch in self._loaded(items, batches, model, failed):
            if batch:
                if fixed(batch[0]) is not None:
                    out = self._forward(model, feats, "oracle", model.lang_index([fixed(w) for w in batch]))
                else:
                    out = self._forward(model, feats, ROUTING_FLAGS[self.opt.routing])
                outputs = self.reading.window_outputs(out, batch)
                decoded.add(batch, out, outputs, record_lid=[w.item not in decided for w in batch])
            if on_progress:
                on_progress(sum(w.end - w.start for w in full))
        return decoded

    def _result(
        self, it: Item, given: str | None, decided: tuple[str, dict[str, float]] | None, decoded: _Decoded, i: int
    ) -> Result:
        """One recording's result: its windows read with the routed head (or decoder language); its
        language the given one, else the decided one, else the routed head's."""
        lang_idx = decoded.routed[i]
        code = given or (decided[0] if decided else self.model.languages[lang_idx])
        probs = decided[1] if decided else {}
        text, words = self.reading.text(decoded.parts[i], lang_idx, code)
        return Result(it.id, code, probs, text, words, it.duration)


@dataclass
class _Decoded:
    """The decoding pass's output per recording (by item index): what its windows left for its text
    (CTC log-probs, or Whisper's text: infer/reading.py), the head that read them, and (single
    pass) the LID posteriors of its windows."""

    parts: dict[int, list[tuple[Window, Any]]] = field(default_factory=dict)
    routed: dict[int, int] = field(default_factory=dict)
    lid: dict[int, list[tuple[float, np.ndarray]]] = field(default_factory=dict)

    def add(self, batch: list[Window], out: ModelOutput, outputs: list[Any], record_lid: list[bool]) -> None:
        lid = out.lid_logprobs.float().exp().cpu().numpy() if out.lid_logprobs is not None else None
        for b, (w, lang_idx) in enumerate(zip(batch, out.lang_ids.cpu().tolist(), strict=True)):
            self.routed[w.item] = lang_idx
            self.parts.setdefault(w.item, []).append((w, outputs[b]))
            if lid is not None and record_lid[b]:
                self.lid.setdefault(w.item, []).append((w.end - w.start, lid[b]))
