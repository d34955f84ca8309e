"""`hlora export peft`: the LoRA of a model as peft adapters that load onto the plain transformers
encoder (HubertModel / Wav2Vec2Model, or WhisperModel's `get_encoder()`):

    OUT/shared/  the layers below the routing point (shared LoRA; a MoLE's fused layers)
    OUT/<lang>/  everything one language runs: the shared layers and that language's routed LoRA,
                 with its CTC head (ctc_head.safetensors, vocab.json) beside the adapter

`PeftModel.from_pretrained(encoder, OUT/<lang>)` then gives the encoder output hlora computes when it
routes to <lang>. A fused layer mixes n experts of rank r with weights w: that is one LoRA of rank
n*r (A stacked, B scaled by w and stacked), written with peft's rank_pattern / alpha_pattern."""

from __future__ import annotations

import json
from pathlib import Path

import torch
from safetensors.torch import save_file

from hlora_cli.errors import HloraError
from hlora_cli.model import HloraModel
from hlora_cli.model.lora import LoRALinear, layer_of


def _adapter(model: HloraModel, m: LoRALinear, i: int, lang: int | None) -> tuple[torch.Tensor, torch.Tensor]:
    """(A, B) of module m in layer i for language `lang` (None: language-independent layers only)."""
    kind = model.layer_lora[i]
    if kind == "fused":
        w = model.fusion_weights(i).to(m.lora_B.dtype)
        return m.lora_A.reshape(-1, m.lora_A.shape[-1]), (m.lora_B * w[:, None, None]).permute(1, 0, 2).flatten(1)
    return m.lora_A[lang if m.routed else 0], m.lora_B[lang if m.routed else 0]


def _write_adapter(model: HloraModel, out: Path, lang: int | None, base_name: str) -> None:
    from peft import LoraConfig

    cfg = model.config.lora
    tensors, targets, ranks, alphas = {}, [], {}, {}
    for name, m in model.backbone.module.named_modules():
        if not isinstance(m, LoRALinear):
            continue
        i = layer_of(name)
        if lang is None and model.layer_lora[i] == "routed":
            continue
        a, b = _adapter(model, m, i, lang)
        targets.append(name)
        if a.shape[0] != cfg.rank:  # a fused layer: rank n*r, the same scaling alpha/r
            ranks[name], alphas[name] = a.shape[0], m.scaling * a.shape[0]
        tensors[f"base_model.model.{name}.lora_A.weight"] = a.detach().contiguous().cpu()
        tensors[f"base_model.model.{name}.lora_B.weight"] = b.detach().contiguous().cpu()
    config = LoraConfig(
        r=cfg.rank,
        lora_alpha=cfg.alpha,
        lora_dropout=0.0,
        target_modules=targets,
        rank_pattern=ranks,
        alpha_pattern=alphas,
        bias="none",
        base_model_name_or_path=base_name,
    )
    out.mkdir(parents=True, exist_ok=True)
    config.save_pretrained(str(out))
    save_file(tensors, str(out / "adapter_model.safetensors"))


def export_peft(model: HloraModel, out: Path) -> list[str]:
    """Write the adapters into `out` (a new directory); returns the adapter names written."""
    if model.config.model_type == "ctc":
        raise HloraError("a ctc model has no LoRA (its encoder layers are fine-tuned): use `hlora export hf`")
    if model.is_merged:
        raise HloraError("export an unmerged model")
    base = model.config.backbone.source or f"random {model.backbone.kind} config (seed {model.config.backbone.seed})"
    written = []
    language_independent = model.layout.shared or model.layout.fused
    if language_independent:
        _write_adapter(model, out / "shared", None, base)
        written.append("shared")
    if model.layout.routed:
        for idx, code in enumerate(model.languages):
            _write_adapter(model, out / code, idx, base)
            head = model.readout.heads[idx]
            save_file({"weight": head.weight.detach().contiguous(), "bias": head.bias.detach().contiguous()},
                      str(out / code / "ctc_head.safetensors"))  # fmt: skip
            (out / code / "vocab.json").write_text(json.dumps(model.vocab(idx), ensure_ascii=False))
            written.append(code)
    if model.shared_head:  # one head for every language: beside the shared adapter
        head = model.readout.heads[0]
        save_file({"weight": head.weight.detach().contiguous(), "bias": head.bias.detach().contiguous()},
                  str(out / "shared" / "ctc_head.safetensors"))  # fmt: skip
        (out / "shared" / "vocab.json").write_text(json.dumps(model.vocab(0), ensure_ascii=False))
    return written
