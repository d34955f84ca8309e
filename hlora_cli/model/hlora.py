"""The four systems on one frozen encoder of N layers, one forward.

ctc         : no LoRA; every encoder layer fine-tuned (the conv frontend stays frozen), one shared
              CTC head whose language-prefix tokens (`<en>`) give the language
shared-lora : shared LoRA in all N layers, LID head on the output, one shared CTC head
lidlora     : routed LoRA in all N layers, per-language CTC heads, language given from outside
hlora       : shared LoRA in layers 1..k, LID head after layer k, routed LoRA in layers k+1..N,
              per-language CTC heads; the LID picks LoRA and head in a single pass
expert      : one language's LoRA in every layer and its CTC head (a one-language lidlora that
              needs no language given: it has only one)
mole        : the experts' LoRA in every layer: in layers 1..l1 every expert's update, mixed by
              learned fusion weights (softmax over experts, one set per layer); a router (the LID
              head) after layer l1; in l1+1..N and the heads, the routed language's own expert.
              Only fusion weights and router train.
student     : the shared-lora layout, its LoRA distilled from experts (model/losses.py)

What reads the encoder (model/readout.py), chosen once from the config: CTC heads, or (seq2seq,
Whisper only) Whisper's own decoder with LoRA in its layers: shared for the shared-head types, each
language's own (routed as the encoder's top layers) for the others, forced to the routed
language's token.

Routing of the routed layers: "oracle" (the given language), "predicted" (the LID's argmax, hard),
"soft" (every language's LoRA weighted by the LID posterior) or "top2" (the two most likely,
renormalised). The CTC head is the routed language's; in soft training every head's loss is
weighted by the posterior (see model/losses.py).
"""

from __future__ import annotations

import copy

import torch
from torch import nn
from torch.utils.checkpoint import checkpoint

from hlora_cli.errors import HloraError
from hlora_cli.model.backbone import Backbone, Features, additive_mask
from hlora_cli.model.config import ModelConfig, resolve_layout
from hlora_cli.model.heads import LIDHead
from hlora_cli.model.lora import LoRALinear, groupable, inject_lora, layer_of, routing
from hlora_cli.model.output import ModelOutput
from hlora_cli.model.readout import READOUTS, make_readout

ROUTING_MODES = ("predicted", "oracle", "soft", "top2")


class HloraModel(nn.Module):
    """The model core of every type: a frozen encoder, its LoRA (shared, routed, fused) and a LID
    head as the layout says, read out by CTC heads or (seq2seq) Whisper's decoder."""

    def __init__(self, config: ModelConfig, backbone: Backbone) -> None:
        super().__init__()
        self.config = config
        self.backbone = backbone.freeze()
        self.layout = resolve_layout(config, backbone.num_layers)
        self.layer_lora = ["none"] * backbone.num_layers  # per layer (0-based): shared, routed or none
        for n in self.layout.shared:
            self.layer_lora[n - 1] = "shared"
        for n in self.layout.routed:
            self.layer_lora[n - 1] = "routed"
        for n in self.layout.fused:
            self.layer_lora[n - 1] = "fused"
        self.lid_after = self.layout.lid_after  # the LID head reads h after this many layers (0: no LID head)
        if len(config.languages) < 1 or len(set(config.languages)) != len(config.languages):
            raise HloraError(f"languages must be a non-empty list without repeats, got {config.languages}")
        n_lang = len(config.languages)
        if config.model_type == "expert" and n_lang != 1:
            raise HloraError(f"an expert is one language's model, got {n_lang}: {', '.join(config.languages)}")
        self.lora: list[list[LoRALinear]] = []
        for i, adapter in enumerate(self.layer_lora):
            if adapter == "none":
                self.lora.append([])
                continue
            where = f"{backbone.kind} layer {i + 1}"
            n = 1 if adapter == "shared" else n_lang
            self.lora.append(inject_lora(backbone.layers()[i], backbone.target_paths, n, config.lora, where))
        if self.layout.finetuned:
            backbone.unfreeze([n - 1 for n in self.layout.finetuned])
        # Built where its random init has always been drawn (a seed gives the model it gave before):
        # Whisper's decoder LoRA before the LID head, CTC heads after it.
        readout = make_readout(config, backbone) if READOUTS[config.backbone_mode].init_before_lid else None
        self.lid_head = LIDHead(backbone.hidden_size, n_lang, config.lid) if self.lid_after else None
        self.readout = readout if readout is not None else make_readout(config, backbone)  # CTC heads or a decoder
        # mole: per fused layer, one logit per expert; softmax -> convex weights. Zeros: the
        # experts' mean, and one-hot (a -inf everywhere else) gives exactly one expert.
        n_fused = len(self.layout.fused)
        self.fusion = nn.Parameter(torch.zeros(n_fused, n_lang)) if n_fused else None
        if config.model_type == "mole":  # the experts stay as trained: fusion weights and router learn
            for m in self.lora_modules():
                m.lora_A.requires_grad_(False)
                m.lora_B.requires_grad_(False)
            self.readout.requires_grad_(False)
        self.gradient_checkpointing = False  # recompute layer activations in backward (set by the trainer)

    @property
    def plan(self) -> list[str]:
        return self.layer_lora

    @property
    def languages(self) -> list[str]:
        return self.config.languages

    @property
    def one_language(self) -> bool:
        """An expert: its one language needs no identification."""
        return self.config.one_language

    @property
    def has_lid(self) -> bool:
        """Whether the model tells the language itself (a LID head, ctc's prefix tokens, or an
        expert's only language)."""
        return self.lid_head is not None or self.readout.tells_language or self.one_language

    @property
    def routes_by_language(self) -> bool:
        """Whether an utterance's routed language changes what the model makes of it (its routed
        LoRA, its head, or the language token the decoder is forced to), so that routing by the
        LID and by the true language can differ."""
        return not self.one_language and (bool(self.layout.routed) or self.readout.follows_route)

    @property
    def shared_head(self) -> bool:
        return self.config.shared_head

    def vocab(self, lang: int) -> list[str]:
        """Token inventory of the CTC head that language index `lang` decodes with ([] for Whisper's decoder)."""
        return self.config.head_vocab(lang)

    def lang_index(self, codes: list[str]) -> torch.Tensor:
        """Language codes -> indices; a language without a head is a clear error."""
        return torch.tensor(self.config.language_indices(codes), dtype=torch.long)

    def prepare(self, waveforms: list) -> Features:
        return self.backbone.prepare(waveforms)

    def _lid(self, h: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        return torch.log_softmax(self.lid_head(h, lengths).float(), dim=-1)

    @staticmethod
    def _route_weights(lid_logprobs: torch.Tensor, routing_mode: str) -> torch.Tensor | None:
        if routing_mode == "soft":
            return lid_logprobs.exp()
        if routing_mode == "top2":
            top = lid_logprobs.topk(min(2, lid_logprobs.shape[-1]), dim=-1)
            w = torch.zeros_like(lid_logprobs).scatter(-1, top.indices, top.values.exp())
            return w / w.sum(-1, keepdim=True)
        return None

    def fusion_weights(self, i: int) -> torch.Tensor:
        """The fusion weights of layer i (0-based, a fused layer): shape = (n_experts,), sum 1."""
        return torch.softmax(self.fusion[self.layout.fused.index(i + 1)].float(), dim=-1)

    def _layer(
        self,
        i: int,
        h: torch.Tensor,
        mask: torch.Tensor | None,
        route: torch.Tensor | None,
        weights: torch.Tensor | None,
    ) -> torch.Tensor:
        def run(h: torch.Tensor) -> torch.Tensor:
            if self.layer_lora[i] == "fused":
                fused = self.fusion_weights(i).to(h.dtype).expand(h.shape[0], -1)
                with routing(self.lora[i], None, fused):
                    return self.backbone.layer(i, h, mask)
            if self.layer_lora[i] != "routed":
                return self.backbone.layer(i, h, mask)
            with routing(self.lora[i], route, weights, frames=h.shape[1]):  # forward sorted the batch by language
                return self.backbone.layer(i, h, mask)

        if self.gradient_checkpointing and self.training and torch.is_grad_enabled():
            return checkpoint(run, h, use_reentrant=False)  # the routing is set again in the recompute
        return run(h)

    def forward(
        self,
        feats: Features,
        routing_mode: str = "predicted",
        langs: torch.Tensor | None = None,
        hidden: bool = False,
    ) -> ModelOutput:
        """Encode, identify, route and score a padded batch.

        routing_mode "predicted": the LID head chooses each utterance's LoRA and head (hlora);
        "soft" / "top2": the routed LoRA are mixed by the LID posterior (all, or the two most likely)
        and the head is the argmax's; "oracle": `langs` (shape = (batch,)) chooses. Models
        without routed layers ignore the routing for their LoRA. `hidden`: also return every
        layer's output (in the caller's order). The readout fills its fields of the output (CTC
        log-probs, or the encoder output that Whisper's decoder reads: model/readout.py).
        """
        if routing_mode not in ROUTING_MODES:
            raise HloraError(f"unknown routing '{routing_mode}': choose {', '.join(ROUTING_MODES)}")
        if routing_mode == "oracle":
            if langs is None:
                raise HloraError("oracle routing needs the language of every utterance")
            route = langs.to(feats.values.device)
        elif self.one_language:
            route = torch.zeros(feats.values.shape[0], dtype=torch.long, device=feats.values.device)
        else:
            if not self.has_lid:
                raise HloraError("a lidlora model has no LID head: decode it with oracle languages or two-stage")
            route = None
        h, lengths = self.backbone.embed(feats)
        mask = additive_mask(lengths, h.shape[1], h.dtype)
        lid_logprobs, order, weights, sorted_from = None, None, None, 0
        states: list[torch.Tensor] | None = [] if hidden else None
        for i, adapter in enumerate(self.layer_lora):
            if self.lid_after == i and self.lid_head is not None:
                lid_logprobs = self._lid(h, lengths)
                if route is None:
                    route = lid_logprobs.argmax(-1)
                    weights = self._route_weights(lid_logprobs, routing_mode)
            if adapter == "routed" and weights is None and order is None:
                # Hard routing: sort the batch by language once, so every routed layer sees contiguous runs.
                order, sorted_from = torch.argsort(route, stable=True), i
                h, lengths, route = h[order], lengths[order], route[order]
                mask = mask[order] if mask is not None else None
            h = self._layer(i, h, mask, route, weights)
            if states is not None:
                states.append(h)
        h = self.backbone.finish(h)
        if self.lid_after == len(self.layer_lora):
            lid_logprobs = self._lid(h, lengths)
            route = route if route is not None else lid_logprobs.argmax(-1)
        read, read_lid = self.readout.read(h, lengths, route, weights, ordered=order is not None)
        if read_lid is not None:  # the readout tells the language (ctc's prefix tokens)
            lid_logprobs = read_lid
            route = route if route is not None else lid_logprobs.argmax(-1)
        if order is not None:  # back to the caller's order (soft routing never sorts: no list to undo)
            inverse = torch.argsort(order)
            lengths, route = lengths[inverse], route[inverse]
            read = {k: v[inverse] if isinstance(v, torch.Tensor) else v for k, v in read.items()}
            if states is not None:
                states = [s[inverse] if n >= sorted_from else s for n, s in enumerate(states)]
        fields = {"ctc_logprobs": None, **read}
        return ModelOutput(lid_logprobs, route, out_lengths=lengths, route_weights=weights, hidden=states, **fields)

    @torch.no_grad()
    def identify(self, feats: Features) -> torch.Tensor:
        """LID log-posteriors only, shape = (batch, n_languages): runs the encoder up to the LID
        layer and stops (the first stage of a two-stage system). A ctc model runs all of it and
        reads its prefix tokens."""
        if not self.has_lid:
            raise HloraError("a lidlora model has no LID head: use a ctc, shared-lora or hlora model for language ID")
        if self.one_language:
            return torch.zeros(feats.values.shape[0], 1, device=feats.values.device)
        if self.readout.tells_language:
            return self(feats, "predicted").lid_logprobs
        h, lengths = self.backbone.embed(feats)
        mask = additive_mask(lengths, h.shape[1], h.dtype)
        for i in range(self.lid_after):
            h = self._layer(i, h, mask, None, None)
        if self.lid_after == len(self.layer_lora):
            h = self.backbone.finish(h)
        return self._lid(h, lengths)

    def folded_backbone(self, lang: int) -> Backbone:
        """A copy of the backbone with every LoRA folded into its weights as language index `lang`
        is routed: shared LoRA as it is, routed layers that language's, fused layers their learned
        mix. No LoRA module is left in it: its `module` is a plain transformers encoder
        (HubertModel, Wav2Vec2Model or WhisperEncoder), and for seq2seq its `generator` a plain
        WhisperForConditionalGeneration (decoder LoRA folded too): what `hlora export` writes."""
        if self.is_merged:
            raise HloraError("fold an unmerged model: call unmerge() first")
        if not 0 <= lang < len(self.languages):
            raise HloraError(f"language index {lang} outside 0..{len(self.languages) - 1}")
        backbone = copy.deepcopy(self.backbone)
        with torch.no_grad():
            for name, m in list(backbone.named_modules()):
                if not isinstance(m, LoRALinear):
                    continue
                if not name.startswith("decoder.") and self.layer_lora[layer_of(name)] == "fused":
                    delta = m._fused_delta(self.fusion_weights(layer_of(name)))
                else:
                    delta = m.delta_weight()[lang if m.routed else 0]
                m.base.weight += delta.to(m.base.weight.dtype)
                parent, _, attr = name.rpartition(".")
                setattr(backbone.get_submodule(parent), attr, m.base)
        return backbone.requires_grad_(False).eval()

    def lora_modules(self) -> list[LoRALinear]:
        return [m for layer in self.lora for m in layer] + self.readout.lora_modules()

    def merge(self, routed: bool = False, dtype: torch.dtype | None = None) -> None:
        """Fold shared LoRA into the frozen weights for inference; with `routed`, also keep one
        merged weight per language for routed layers (more memory, bare-backbone speed), and the
        CTC heads stacked for a grouped read, cast to `dtype` (the dtype they will compute in) now
        if given. Fused layers fold their weighted sum of experts into one weight. Merge after
        moving the model: the per-language copies are not parameters and stay where they were made."""
        for i, modules in enumerate(self.lora):
            for m in modules:
                if self.layer_lora[i] == "fused":
                    m.merge_fused(self.fusion_weights(i))
                else:
                    m.merge(routed=routed, dtype=dtype)
        for m in self.readout.lora_modules():
            m.merge(routed=routed, dtype=dtype)
        if routed:
            self.readout.merge(dtype)

    def merges_grouped(self, device: torch.device, dtype: torch.dtype) -> bool:
        """Whether, merged with `routed`, its routed layers and CTC heads run as grouped matmuls on
        `device` at `dtype` (lora.groupable): what a compiled pass needs to keep them merged (the
        per-language loop asks the host, which a compiled graph cannot)."""
        routed = [m for modules in self.lora for m in modules if m.routed]
        return groupable(routed, device, dtype) and self.backbone.hidden_size % 8 == 0

    def unmerge(self) -> None:
        for m in self.lora_modules():
            m.unmerge()
        self.readout.unmerge()

    @property
    def is_merged(self) -> bool:
        return any(m.merged or m.merged_weights is not None for m in self.lora_modules())

    def trainable_state_dict(self) -> dict[str, torch.Tensor]:
        """The parameters that training changes: LoRA, LID head and CTC heads (and, for ctc, the
        fine-tuned encoder layers; for mole, fusion weights and router only)."""
        return {n: p.detach() for n, p in self.named_parameters() if p.requires_grad}

    def saved_state_dict(self) -> dict[str, torch.Tensor]:
        """What a model directory holds: every trained parameter, and the frozen experts' LoRA and
        heads of a mole model (so it needs no expert directory to load)."""
        return {
            n: p.detach()
            for n, p in self.named_parameters()
            if p.requires_grad or not n.startswith("backbone.") or ".lora_" in n
        }

    def parameter_counts(self) -> tuple[int, int]:
        """(trainable, frozen) parameter counts."""
        trainable = sum(p.numel() for p in self.parameters() if p.requires_grad)
        frozen = sum(p.numel() for p in self.parameters() if not p.requires_grad)
        return trainable, frozen

    def train(self, mode: bool = True) -> HloraModel:
        if mode and self.is_merged:
            raise HloraError("the model is merged for inference: call unmerge() before training")
        return super().train(mode)
