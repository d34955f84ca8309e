"""How `hlora decode` turns a forward's output into text: the inference side of the model's readout
(model/readout.py), chosen once from its config by `reading_for`.

    CTCReading      overlapping windows whose per-frame log-probs are stitched per recording, then
                    greedy or prefix beam search (pyctcdecode, a KenLM per language if given)
    DecoderReading  windows that tile the recording, each written by Whisper's decoder (greedy or
                    beams, a token budget per second, whisper's loop test and a retry), joined

The Recognizer (infer/runner.py) asks each for the same four things: the windows of a recording,
what a batch of windows gives (`window_outputs`), a recording's text from its windows' outputs
(`text`), and the settings a decode's meta records."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import numpy as np
import torch

from hlora_cli.device import autocast
from hlora_cli.errors import HloraError
from hlora_cli.infer.ctc_beam import BeamDecoder
from hlora_cli.infer.decodable import DecodableModel
from hlora_cli.infer.long_audio import Window, stitch, text_windows, windows
from hlora_cli.model.ctc_decoding import greedy_hypothesis
from hlora_cli.model.output import ModelOutput
from hlora_cli.model.readout import CTCReadout, DecoderReadout
from hlora_cli.model.whisper_decoder import generate, retry_loops, token_budget
from text_normalization import normalize

Words = list[tuple[str, float, float]]


class Reading:
    kind: str  # the readout it decodes for (model/readout.py READOUTS)

    def __init__(self, model: DecodableModel, options, device: torch.device, dtype: torch.dtype) -> None:
        self.model, self.opt, self.device, self.dtype = model, options, device, dtype
        self.fps = model.backbone.frames_per_second

    def windows(self, item: int, duration: float, length: float) -> list[Window]:
        raise NotImplementedError

    def window_outputs(self, out: ModelOutput, batch: list[Window]) -> list[Any]:
        """What each window of a decoded batch leaves for its recording's text."""
        raise NotImplementedError

    def text(self, parts: list[tuple[Window, Any]], lang_idx: int, code: str) -> tuple[str, Words]:
        """A recording's text (and word times where known) from its windows' outputs, read as
        head `lang_idx` (language `code`)."""
        raise NotImplementedError

    def settings(self) -> dict:
        """What a decode's meta records of how it read (beyond the options every decode records)."""
        return {}


class CTCReading(Reading):
    kind = CTCReadout.kind

    def __init__(self, model: DecodableModel, options, device: torch.device, dtype: torch.dtype) -> None:
        super().__init__(model, options, device, dtype)
        self._beams: dict[int, BeamDecoder] = {}
        unknown = sorted(set(options.lms) - set(model.languages))
        if unknown:
            raise HloraError(
                f"--lm for {', '.join(unknown)}: the model has no head for it (it knows {', '.join(model.languages)})"
            )
        for code in options.lms:  # load every LM now: a broken one fails before any decoding
            self._beam(model.languages.index(code))

    def windows(self, item: int, duration: float, length: float) -> list[Window]:
        return windows(item, duration, length, self.opt.overlap, self.fps)

    def window_outputs(self, out: ModelOutput, batch: list[Window]) -> list[np.ndarray]:
        lengths = out.out_lengths.cpu().tolist()
        ctc = out.ctc_logprobs.float().cpu().numpy()
        routed = out.lang_ids.cpu().tolist()
        return [ctc[b, : lengths[b], : len(self.model.vocab(routed[b]))] for b in range(len(batch))]

    def text(self, parts: list[tuple[Window, np.ndarray]], lang_idx: int, code: str) -> tuple[str, Words]:
        log_probs = stitch(parts, self.fps)
        if self.opt.decoder == "greedy":
            hyp = greedy_hypothesis(log_probs, self.model.vocab(lang_idx), code, self.fps)
        else:
            hyp = self._beam(lang_idx)(log_probs, self.fps)
        return hyp.text, hyp.words

    def _beam(self, lang_idx: int) -> BeamDecoder:
        if lang_idx not in self._beams:
            opt, code = self.opt, self.model.languages[lang_idx]
            lm = opt.lms.get(code)
            try:
                self._beams[lang_idx] = BeamDecoder(
                    self.model.vocab(lang_idx), code, lm, opt.beam_width or 32, opt.lm_alpha, opt.lm_beta
                )
            except (OSError, RuntimeError, ValueError) as e:
                raise HloraError(f"{lm}: not a readable KenLM model (ARPA or binary) for --lm {code} ({e})") from e
        return self._beams[lang_idx]


class DecoderReading(Reading):
    kind = DecoderReadout.kind

    def __init__(self, model: DecodableModel, options, device: torch.device, dtype: torch.dtype) -> None:
        super().__init__(model, options, device, dtype)
        if options.lms:
            raise HloraError("--lm fuses a KenLM into CTC beam search; a seq2seq model decodes with Whisper's decoder")

    def windows(self, item: int, duration: float, length: float) -> list[Window]:
        return text_windows(item, duration, length)

    def window_outputs(self, out: ModelOutput, batch: list[Window]) -> list[str]:
        """Each window's text from Whisper's decoder, forced to its routed language."""
        opt, model = self.opt, self.model
        caps = [token_budget(w.end - w.start, opt.max_tokens_per_second) for w in batch]

        def write(o: ModelOutput, ngram: int, budgets: list[int]) -> list[str]:
            with autocast(self.device, self.dtype):
                ids = generate(model, o, opt.seq2seq_beams, ngram, budgets)
            return [model.backbone.decode_tokens(t) for t in ids]

        def again(rows: list[int], ngram: int) -> list[str]:  # those rows of the batch, generated anew
            idx = torch.tensor(rows, device=out.encoder_out.device)
            part = replace(
                out,
                lang_ids=out.lang_ids[idx],
                out_lengths=out.out_lengths[idx],
                encoder_out=out.encoder_out[idx],
                route_weights=None if out.route_weights is None else out.route_weights[idx],
            )
            return write(part, ngram, [caps[n] for n in rows])

        return retry_loops(write(out, opt.no_repeat_ngram, caps), opt.loop_ngram, opt.no_repeat_ngram, again)

    def text(self, parts: list[tuple[Window, str]], lang_idx: int, code: str) -> tuple[str, Words]:
        # normalised as the training targets were, and as every other system writes
        text = " ".join(t for _, t in sorted(parts, key=lambda p: p[0].index) if t)
        return normalize(text, code), []

    def settings(self) -> dict:
        return generation_settings(self.opt)


def generation_settings(options) -> dict:
    """How a Whisper decoder wrote (ours, or a zero-shot Whisper's): recorded in a decode's meta."""
    return {
        "beams": options.seq2seq_beams,
        "max_tokens_per_second": options.max_tokens_per_second,
        "no_repeat_ngram": options.no_repeat_ngram,
        "loop_ngram": options.loop_ngram,
    }


READINGS: dict[str, type[Reading]] = {r.kind: r for r in (CTCReading, DecoderReading)}  # as READOUTS


def reading_for(model: DecodableModel, options, device: torch.device, dtype: torch.dtype) -> Reading:
    """The reading of the model's readout (its config's backbone_mode)."""
    return READINGS[model.config.backbone_mode](model, options, device, dtype)
