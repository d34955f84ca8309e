"""A model exported by `hlora export onnx`, run by onnxruntime behind the interface the decoder
(runner.py) uses of a torch model: languages, inventories, the frontend, a forward that routes
each utterance to its language's graph (hard routing: the LID's argmax, or the given language),
and LID alone. The decoder's output files are those of a torch model."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from hlora_cli.data.features import Frontend, LogMelFrontend, WaveformFrontend
from hlora_cli.errors import HloraError
from hlora_cli.model.backbone import Features
from hlora_cli.model.config import ModelConfig
from hlora_cli.model.output import ModelOutput


@dataclass
class OnnxBackbone:
    """What the decoder reads of a backbone: its frontend and frame rate."""

    kind: str
    frontend: Frontend
    frames_per_second: float
    max_seconds: float | None
    per_utterance_frontend: bool


def _frontend(path: Path, f: dict) -> Frontend:
    if f["kind"] == "whisper":
        from transformers import WhisperFeatureExtractor

        return LogMelFrontend(
            f["min_samples"], f["kind"], WhisperFeatureExtractor.from_pretrained(str(path)), f["max_frames"]
        )
    return WaveformFrontend(f["min_samples"], f["kind"], bool(f["do_normalize"]))


class OnnxModel:
    def __init__(self, path: str | Path, threads: int | None = None) -> None:
        try:
            import onnxruntime as ort
        except ImportError as e:
            raise HloraError("decoding an ONNX model needs onnxruntime: pip install 'hlora[export]'") from e
        path = Path(path)
        meta = read_meta(path)
        try:
            if meta.get("format") != 1:
                raise ValueError(f"format {meta.get('format')!r}, this hlora reads format 1")
            self.config = ModelConfig.from_dict(meta["config"])
            f = meta["frontend"]
            self.backbone = OnnxBackbone(
                f["kind"], _frontend(path, f), f["frames_per_second"], f["max_seconds"], f["per_utterance"]
            )
        except (KeyError, TypeError, ValueError, OSError) as e:
            why = str(e).splitlines()[0] if str(e) else type(e).__name__
            raise HloraError(
                f"{path / 'onnx.json'}: not an export of `hlora export onnx` that this hlora reads ({why})"
            ) from e
        self.int8 = bool(meta.get("int8"))
        options = ort.SessionOptions()
        options.intra_op_num_threads = threads or torch.get_num_threads()
        options.inter_op_num_threads = 1
        self.sessions = {}
        for name, file in meta["graphs"].items():
            if not (path / file).is_file():
                raise HloraError(f"{path / file}: no such file; the ONNX export is incomplete")
            try:
                self.sessions[name] = ort.InferenceSession(
                    str(path / file), options, providers=["CPUExecutionProvider"]
                )
            except Exception as e:  # onnxruntime's own error types: a graph cut short or not ONNX
                raise HloraError(f"{path / file}: onnxruntime cannot load it ({str(e).splitlines()[0][:200]})") from e
        self.one_graph = "model" in self.sessions

    # --- what the decoder reads of a model ---------------------------------------------------
    @property
    def languages(self) -> list[str]:
        return self.config.languages

    @property
    def shared_head(self) -> bool:
        return self.config.shared_head

    @property
    def one_language(self) -> bool:
        return self.config.one_language  # the rule the torch model follows

    has_lid = True  # only single-pass models are exported

    def vocab(self, lang: int) -> list[str]:
        return self.config.head_vocab(lang)

    def lang_index(self, codes: list[str]) -> torch.Tensor:
        return torch.tensor(self.config.language_indices(codes), dtype=torch.long)

    def prepare(self, waveforms: list) -> Features:
        return self.backbone.frontend(waveforms)

    # --- running the graphs -----------------------------------------------------------------
    def _first(self, feats: Features) -> list[np.ndarray]:
        """The first graph (model.onnx or encoder.onnx) on the batch; one utterance at a time where
        the frontend must see each utterance alone, its outputs padded back into one batch."""
        session = self.sessions["model" if self.one_graph else "encoder"]
        values, lengths = feats.values.float().cpu().numpy(), feats.lengths.cpu().numpy().astype(np.int64)
        if not self.backbone.per_utterance_frontend:
            return session.run(None, {"values": values, "lengths": lengths})
        parts = [
            session.run(None, {"values": values[b : b + 1, : lengths[b]], "lengths": lengths[b : b + 1]})
            for b in range(len(lengths))
        ]
        outs = []
        for k in range(len(parts[0])):
            arrays = [p[k] for p in parts]
            if arrays[0].ndim == 3:  # (1, frames, dim): pad frames
                t = max(a.shape[1] for a in arrays)
                arrays = [np.pad(a, ((0, 0), (0, t - a.shape[1]), (0, 0))) for a in arrays]
            outs.append(np.concatenate(arrays))
        return outs

    def __call__(
        self, feats: Features, routing_mode: str = "predicted", langs: torch.Tensor | None = None
    ) -> ModelOutput:
        if routing_mode not in ("predicted", "oracle"):
            raise HloraError(f"an ONNX model routes hard: --routing {routing_mode} needs the torch model")
        if self.one_graph:
            lid, log_probs, lengths = self._first(feats)
        else:
            h, lengths, lid = self._first(feats)
        if routing_mode == "oracle":
            route = langs.cpu().numpy()
        elif self.one_language:
            route = np.zeros(len(lengths), dtype=np.int64)
        else:
            route = lid.argmax(-1)
        if not self.one_graph:
            log_probs = np.full((*h.shape[:2], max(len(v) for v in self._vocabs())), -np.inf, dtype=np.float32)
            for lang in np.unique(route).tolist():
                idx = np.nonzero(route == lang)[0]
                t = int(lengths[idx].max())
                (lp,) = self.sessions[self.languages[lang]].run(
                    None, {"hidden": h[idx, :t], "out_lengths": lengths[idx]}
                )
                log_probs[idx, :t, : lp.shape[-1]] = lp
        return ModelOutput(
            torch.from_numpy(lid),
            torch.from_numpy(np.asarray(route, dtype=np.int64)),
            torch.from_numpy(log_probs),
            torch.from_numpy(np.asarray(lengths, dtype=np.int64)),
        )

    def _vocabs(self) -> list[list[str]]:
        return [self.vocab(i) for i in range(len(self.languages))]

    def identify(self, feats: Features) -> torch.Tensor:
        out = self._first(feats)
        return torch.from_numpy(out[0] if self.one_graph else out[2])


def read_meta(path: Path) -> dict:
    """What `hlora export onnx` wrote beside the graphs (onnx.json): the layout the reader needs."""
    meta_file = Path(path) / "onnx.json"
    try:
        return json.loads(meta_file.read_text(encoding="utf-8"))
    except FileNotFoundError as e:
        raise HloraError(f"{meta_file}: no such file; is {path} a directory from `hlora export onnx`?") from e
    except json.JSONDecodeError as e:
        raise HloraError(f"{meta_file}: not valid JSON ({e})") from e
