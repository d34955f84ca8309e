"""The three systems on one frozen encoder, one forward.

baseline : shared LoRA in all L layers, LID head on the output, one shared CTC head
lidlora  : routed LoRA in all L layers, per-language CTC heads, language given from outside
hlora    : shared LoRA in layers 1..L-k, LID head after layer L-k, routed LoRA in layers
           L-k+1..L, per-language CTC heads; the LID picks LoRA and head in a single pass
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from hlora_cli.errors import HloraError
from hlora_cli.model.backbone import Backbone, Features, additive_mask
from hlora_cli.model.config import BLANK, MODEL_TYPES, ModelConfig
from hlora_cli.model.heads import CTCHeads, LIDHead
from hlora_cli.model.lora import LoRALinear, inject_lora, routing

ROUTINGS = ("predicted", "oracle")


@dataclass
class ModelOutput:
    """lang_logprobs : shape = (batch, n_languages), LID log-posteriors (None without a LID head)
    langs : shape = (batch,), index of the language whose LoRA and head were used
    log_probs : shape = (batch, frames, max vocab), per-frame CTC log-probabilities of that head
    out_lengths : shape = (batch,), valid frames per utterance"""

    lang_logprobs: torch.Tensor | None
    langs: torch.Tensor
    log_probs: torch.Tensor
    out_lengths: torch.Tensor


def layer_plan(model_type: str, num_layers: int, k: int | None) -> tuple[list[str], int | None]:
    """Kind of LoRA ("shared" or "routed") per layer, and after how many layers the LID head sits."""
    if model_type not in MODEL_TYPES:
        raise HloraError(f"unknown model type '{model_type}': choose from {', '.join(MODEL_TYPES)}")
    if model_type == "baseline":
        return ["shared"] * num_layers, num_layers
    if model_type == "lidlora":
        return ["routed"] * num_layers, None
    if k is None or not 1 <= k <= num_layers - 1:
        raise HloraError(
            f"k={k} is outside 1..{num_layers - 1} for a {num_layers}-layer encoder: set --k in that range"
        )
    return ["shared"] * (num_layers - k) + ["routed"] * k, num_layers - k


class HLoRAModel(nn.Module):
    def __init__(self, config: ModelConfig, backbone: Backbone) -> None:
        super().__init__()
        self.config = config
        self.backbone = backbone.freeze()
        self.plan, self.lid_layer = layer_plan(config.model_type, backbone.num_layers, config.k)
        if len(config.languages) < 1 or len(set(config.languages)) != len(config.languages):
            raise HloraError(f"languages must be a non-empty list without repeats, got {config.languages}")
        n_lang = len(config.languages)
        self.lora: list[list[LoRALinear]] = []
        for i, kind in enumerate(self.plan):
            n = 1 if kind == "shared" else n_lang
            where = f"{backbone.kind} layer {i + 1}"
            self.lora.append(inject_lora(backbone.layers()[i], backbone.target_paths, n, config.lora, where))
        self.lid_head = LIDHead(backbone.hidden_size, n_lang, config.lid) if self.lid_layer else None
        self.ctc_heads = CTCHeads(backbone.hidden_size, self._vocab_sizes())

    def _vocab_sizes(self) -> list[int]:
        cfg = self.config
        if cfg.model_type == "baseline":
            vocabs = [cfg.shared_vocab]
            if not cfg.shared_vocab:
                raise HloraError("a baseline model needs a shared vocabulary (shared_vocab)")
        else:
            missing = [lang for lang in cfg.languages if lang not in cfg.vocabs]
            if missing:
                raise HloraError(
                    f"language(s) {', '.join(missing)} have no token inventory, so no CTC head: add them to the vocab"
                )
            vocabs = [cfg.vocabs[lang] for lang in cfg.languages]
        for v in vocabs:
            if not v or v[0] != BLANK:
                raise HloraError(f"a token inventory must start with the blank '{BLANK}' (index 0)")
        return [len(v) for v in vocabs]

    @property
    def languages(self) -> list[str]:
        return self.config.languages

    def vocab(self, lang: int) -> list[str]:
        """Token inventory of the CTC head that language index `lang` decodes with."""
        cfg = self.config
        return cfg.shared_vocab if cfg.model_type == "baseline" else cfg.vocabs[cfg.languages[lang]]

    def lang_index(self, codes: list[str]) -> torch.Tensor:
        """Language codes -> indices; a language without a head is a clear error."""
        unknown = sorted({c for c in codes if c not in self.config.languages})
        if unknown:
            raise HloraError(
                f"language(s) {', '.join(unknown)} have no LoRA/head in this model "
                f"(it knows {', '.join(self.config.languages)})"
            )
        return torch.tensor([self.config.languages.index(c) for c in codes], dtype=torch.long)

    def prepare(self, waveforms: list) -> Features:
        return self.backbone.prepare(waveforms)

    def _lid(self, h: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        return torch.log_softmax(self.lid_head(h, lengths).float(), dim=-1)

    def forward(
        self, feats: Features, routing_mode: str = "predicted", langs: torch.Tensor | None = None
    ) -> ModelOutput:
        """Encode, identify, route and score a padded batch.

        routing_mode "predicted": the LID head chooses each utterance's LoRA and head (hlora);
        "oracle": `langs` (shape = (batch,)) does. A baseline ignores routing for its shared layers.
        """
        if routing_mode not in ROUTINGS:
            raise HloraError(f"unknown routing '{routing_mode}': choose predicted or oracle")
        if routing_mode == "oracle":
            if langs is None:
                raise HloraError("oracle routing needs the language of every utterance")
            route = langs.to(feats.values.device)
        else:
            if self.config.model_type == "lidlora":
                raise HloraError("a lidlora model has no LID head: decode it with oracle languages or two-stage")
            route = None
        h, lengths = self.backbone.embed(feats)
        mask = additive_mask(lengths, h.shape[1], h.dtype)
        lang_logprobs, order = None, None
        for i, kind in enumerate(self.plan):
            if self.lid_layer == i and self.lid_head is not None:
                lang_logprobs = self._lid(h, lengths)
                route = route if route is not None else lang_logprobs.argmax(-1)
            if kind == "routed":
                if order is None:
                    # Sort the batch by language once, so every routed layer sees contiguous runs.
                    order = torch.argsort(route, stable=True)
                    h, lengths, route = h[order], lengths[order], route[order]
                    mask = mask[order] if mask is not None else None
                with routing(self.lora[i], route):
                    h = self.backbone.layer(i, h, mask)
            else:
                h = self.backbone.layer(i, h, mask)
        h = self.backbone.finish(h)
        if self.lid_layer == len(self.plan):
            lang_logprobs = self._lid(h, lengths)
            route = route if route is not None else lang_logprobs.argmax(-1)
        head_route = torch.zeros_like(route) if self.config.model_type == "baseline" else route
        log_probs = self.ctc_heads(h, head_route)
        if order is not None:  # back to the caller's order
            inverse = torch.argsort(order)
            log_probs, lengths, route = log_probs[inverse], lengths[inverse], route[inverse]
        return ModelOutput(lang_logprobs, route, log_probs, lengths)

    @torch.no_grad()
    def identify(self, feats: Features) -> torch.Tensor:
        """LID log-posteriors only, shape = (batch, n_languages): runs the encoder up to the LID
        layer and stops (the first stage of a two-stage system)."""
        if self.lid_head is None:
            raise HloraError("a lidlora model has no LID head: use a baseline or hlora model for language ID")
        h, lengths = self.backbone.embed(feats)
        mask = additive_mask(lengths, h.shape[1], h.dtype)
        for i in range(self.lid_layer):
            h = self.backbone.layer(i, h, mask)
        if self.lid_layer == len(self.plan):
            h = self.backbone.finish(h)
        return self._lid(h, lengths)

    def lora_modules(self) -> list[LoRALinear]:
        return [m for layer in self.lora for m in layer]

    def merge(self, routed: bool = False) -> None:
        """Fold shared LoRA into the frozen weights for inference; with `routed`, also keep one
        merged weight per language for routed layers (more memory, bare-backbone speed)."""
        for m in self.lora_modules():
            m.merge(routed=routed)

    def unmerge(self) -> None:
        for m in self.lora_modules():
            m.unmerge()

    @property
    def is_merged(self) -> bool:
        return any(m.merged or m.merged_weights is not None for m in self.lora_modules())

    def trainable_state_dict(self) -> dict[str, torch.Tensor]:
        """The parameters that training changes: LoRA, LID head and CTC heads."""
        return {n: p.detach() for n, p in self.named_parameters() if p.requires_grad}

    def parameter_counts(self) -> tuple[int, int]:
        """(trainable, frozen) parameter counts."""
        trainable = sum(p.numel() for p in self.parameters() if p.requires_grad)
        frozen = sum(p.numel() for p in self.parameters() if not p.requires_grad)
        return trainable, frozen

    def train(self, mode: bool = True) -> HLoRAModel:
        if mode and self.is_merged:
            raise HloraError("the model is merged for inference: call unmerge() before training")
        return super().train(mode)


@torch.no_grad()
def two_stage_forward(first: HLoRAModel, second: HLoRAModel, feats: Features) -> ModelOutput:
    """Two-stage decoding: `first` (a baseline's LID head) picks the language, then `second`
    (lidlora or hlora) decodes with that language's LoRA and head."""
    lang_logprobs = first.identify(feats)
    codes = [first.languages[i] for i in lang_logprobs.argmax(-1).tolist()]
    out = second(feats, "oracle", second.lang_index(codes))
    order = second.lang_index(first.languages)  # first's language columns in second's order
    posteriors = torch.full((len(codes), len(second.languages)), float("-inf"))
    posteriors[:, order] = lang_logprobs
    out.lang_logprobs = posteriors
    return out
