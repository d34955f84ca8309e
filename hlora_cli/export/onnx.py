"""`hlora export onnx`: a single-pass model as ONNX graphs that onnxruntime runs with routing.

    encoder.onnx   features, lengths -> h after the routing point, lengths, LID log-posteriors: the
                   layers every language shares (shared LoRA, or a MoLE's fused layers, folded into
                   the weights) and the LID head
    <lang>.onnx    h, lengths -> CTC log-probabilities: that language's routed layers (folded) and
                   its CTC head, one graph per language
    model.onnx     instead of the two above where nothing is routed after the LID (shared-lora,
                   student, ctc, an expert): features, lengths -> LID log-posteriors, log-probs
    onnx.json      what the runtime (infer/onnx_model.py) needs: the model config, the frontend,
                   the graphs

Batch and length are dynamic; padded frames are masked as in torch, so padding changes no result.
HuBERT-family encoders whose convolutional frontend normalises over time (group norm) are fed one
utterance at a time by the runtime, as hlora does in torch. `--int8` quantizes every graph's
weights to int8 (onnxruntime dynamic quantization)."""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import torch
from torch import nn

from hlora_cli.errors import HloraError
from hlora_cli.files import json_text
from hlora_cli.model import HloraModel
from hlora_cli.model.backbone import Backbone, Features, additive_mask

OPSET = 17


class _Encoder(nn.Module):
    """Frontend and layers 1..upto of a folded backbone (then the final norm when upto = N), the
    LID head where it reads layer upto, and, for a one-graph model, the CTC head."""

    def __init__(self, model: HloraModel, backbone: Backbone, upto: int, head: bool) -> None:
        super().__init__()
        self.model, self.backbone, self.upto, self.head = model, backbone, upto, head

    def forward(self, values: torch.Tensor, lengths: torch.Tensor) -> tuple[torch.Tensor, ...]:
        bb, model = self.backbone, self.model
        h, lengths = bb.embed(Features(values, lengths))
        mask = additive_mask(lengths, h.shape[1], h.dtype)
        for i in range(self.upto):
            h = bb.layer(i, h, mask)
        if self.upto == bb.num_layers:
            h = bb.finish(h)
        lid = model._lid(h, lengths) if model.lid_head is not None and model.lid_after == self.upto else None
        if not self.head:
            return h, lengths, lid
        log_probs = torch.log_softmax(model.readout.heads[0](h).float(), dim=-1)
        if model.readout.tells_language:
            lid = model.readout.prefix_lid(log_probs, lengths)
        if lid is None:  # one language: nothing to identify
            lid = torch.zeros(h.shape[0], 1, device=h.device)
        return lid, log_probs, lengths


class _Routed(nn.Module):
    """Layers upto+1..N of a backbone folded for one language, the final norm and its CTC head."""

    def __init__(self, backbone: Backbone, upto: int, head: nn.Linear) -> None:
        super().__init__()
        self.backbone, self.upto, self.head = backbone, upto, head

    def forward(self, h: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        mask = additive_mask(lengths, h.shape[1], h.dtype)
        for i in range(self.upto, self.backbone.num_layers):
            h = self.backbone.layer(i, h, mask)
        return torch.log_softmax(self.head(self.backbone.finish(h)).float(), dim=-1)


def routing_point(model: HloraModel) -> int | None:
    """The layer after which the graphs split (the LID layer), or None for one graph."""
    if model.one_language or model.shared_head or not model.layout.routed:
        return None
    return model.lid_after


def check_onnx_exportable(model: HloraModel) -> None:
    if not model.has_lid:
        raise HloraError(
            "a lidlora model needs its language from outside and cannot decode single-pass: export an hlora, mole, "
            "student, shared-lora, ctc or expert model"
        )


def _export(module: nn.Module, args: tuple, path: Path, inputs: list[str], outputs: list[str], axes: dict) -> None:
    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore")  # the TorchScript-based exporter's deprecation and tracer notes
        torch.onnx.export(
            module, args, str(path), input_names=inputs, output_names=outputs, dynamic_axes=axes,
            opset_version=OPSET, dynamo=False, do_constant_folding=True,
        )  # fmt: skip


def _example(model: HloraModel) -> Features:
    """Two utterances of different lengths (one, for frontends run per utterance): the trace sees a
    padded batch, so the graph keeps the mask."""
    rng = np.random.default_rng(0)
    seconds = [1.3] if model.backbone.per_utterance_frontend else [1.3, 0.9]
    return model.prepare([(0.1 * rng.standard_normal(int(s * 16000))).astype(np.float32) for s in seconds])


def export_onnx(model: HloraModel, out: Path, int8: bool = False) -> list[str]:
    """Write the graphs and onnx.json into `out` (a new directory); returns the graph files."""
    check_onnx_exportable(model)
    model = model.eval()
    feats = _example(model)
    point = routing_point(model)
    bb0 = model.folded_backbone(0)
    n = bb0.num_layers
    frame_axes = {
        "values": {0: "batch", 2 if model.backbone.kind == "whisper" else 1: "samples"},
        "lengths": {0: "batch"},
    }
    graphs = {}
    if point is None:
        _export(
            _Encoder(model, bb0, n, head=True), (feats.values, feats.lengths), out / "model.onnx",
            ["values", "lengths"], ["lid_logprobs", "ctc_logprobs", "out_lengths"],
            {**frame_axes, "lid_logprobs": {0: "batch"}, "ctc_logprobs": {0: "batch", 1: "frames"},
             "out_lengths": {0: "batch"}},
        )  # fmt: skip
        graphs["model"] = "model.onnx"
    else:
        encoder = _Encoder(model, bb0, point, head=False)
        _export(
            encoder, (feats.values, feats.lengths), out / "encoder.onnx", ["values", "lengths"],
            ["hidden", "out_lengths", "lid_logprobs"],
            {**frame_axes, "hidden": {0: "batch", 1: "frames"}, "out_lengths": {0: "batch"},
             "lid_logprobs": {0: "batch"}},
        )  # fmt: skip
        graphs["encoder"] = "encoder.onnx"
        with torch.no_grad():
            h, lengths, _ = encoder(feats.values, feats.lengths)
        for idx, code in enumerate(model.languages):
            routed = _Routed(model.folded_backbone(idx), point, model.readout.heads[idx])
            _export(
                routed, (h, lengths), out / f"{code}.onnx", ["hidden", "out_lengths"], ["ctc_logprobs"],
                {"hidden": {0: "batch", 1: "frames"}, "out_lengths": {0: "batch"},
                 "ctc_logprobs": {0: "batch", 1: "frames"}},
            )  # fmt: skip
            graphs[code] = f"{code}.onnx"
    if int8:
        _quantize(out, graphs)
    bb = model.backbone
    if bb.kind == "whisper":
        bb.feature_extractor.save_pretrained(str(out))
    meta = {
        "format": 1,
        "config": model.config.to_dict(),
        "graphs": graphs,
        "int8": int8,
        "frontend": {
            "kind": bb.kind,
            "min_samples": bb.min_samples,
            "frames_per_second": bb.frames_per_second,
            "max_seconds": bb.max_seconds,
            "max_frames": getattr(bb, "max_frames", None),
            "do_normalize": getattr(bb, "do_normalize", None),
            "per_utterance": bb.per_utterance_frontend,
        },
    }
    (out / "onnx.json").write_text(json_text(meta, indent=1) + "\n", encoding="utf-8")
    return list(graphs.values())


def _quantize(out: Path, graphs: dict[str, str]) -> None:
    """Every graph's weights to int8, one scale per output channel (per-tensor scales cost the demo
    model 2 % relative CER, per-channel none); the fp32 graphs are replaced."""
    import logging

    from onnxruntime.quantization import QuantType, quantize_dynamic

    root = logging.getLogger()
    level = root.level
    root.setLevel(logging.ERROR)  # onnxruntime's advice to pre-process, through the root logger, per graph
    try:
        for name, file in graphs.items():
            q = file.replace(".onnx", ".int8.onnx")
            quantize_dynamic(str(out / file), str(out / q), weight_type=QuantType.QInt8, per_channel=True)
            (out / file).unlink()
            graphs[name] = q
    finally:
        root.setLevel(level)
