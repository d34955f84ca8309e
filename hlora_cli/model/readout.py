"""What reads the encoder's output into text: CTC heads or Whisper's own decoder, chosen once from
the model's config (`make_readout`). Each readout owns three things, so the model core, the
trainer and the recognizer never ask which one they hold:

    read          its part of the forward: the encoder output -> the ModelOutput fields it fills
                  (CTC log-probs per frame, or the encoder output as the decoder's memory)
    loss          a batch's forward, its objective (CTC or the decoder's cross-entropy, + LID) and
                  a teacher's distillation terms
    greedy_texts  greedy decoding of a forward's output (the trainer's dev CER)

The decoding strategies of `hlora decode` (beam search and LMs, long-audio windows, Whisper's
repetition guard) are the inference side of the same choice: infer/reading.py."""

from __future__ import annotations

from collections.abc import Callable
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass
from typing import Any, ClassVar

import torch
from torch import nn

from hlora_cli.data.batching import Example
from hlora_cli.data.features import Features
from hlora_cli.data.vocab import BLANK
from hlora_cli.errors import HloraError
from hlora_cli.model.backbone import Backbone
from hlora_cli.model.config import SHARED_HEAD_TYPES, ModelConfig
from hlora_cli.model.ctc_decoding import emitted_tokens, greedy_hypothesis
from hlora_cli.model.heads import CTCHeads, valid_mask
from hlora_cli.model.lora import LoRALinear, routing
from hlora_cli.model.losses import LossParts, distill_loss, joint_loss, seq2seq_distill_loss, seq2seq_loss
from hlora_cli.model.output import ModelOutput
from hlora_cli.model.whisper_decoder import PREFIX_TOKENS, generate, inject_decoder_lora, teacher_forcing, token_budget

Autocast = Callable[[], AbstractContextManager]


@dataclass(frozen=True)
class Objective:
    """The training objective's weights (from train/config.py): the LID term, and a student's
    distillation terms ("layerwise": cosine distance per layer + JS of the posteriors; "logits":
    JS only; "none")."""

    lid_weight: float = 0.0
    kd: str = "none"
    kd_cos_weight: float = 0.0
    kd_js_weight: float = 0.0

    def layerwise(self, teacher: nn.Module | None) -> bool:
        return teacher is not None and self.kd == "layerwise"


def _langs(batch: list[Example], feats: Features) -> torch.Tensor:
    return torch.tensor([e.lang_index for e in batch], device=feats.values.device)


class Readout(nn.Module):
    """The interface; the two implementations below."""

    kind: ClassVar[str]  # the config's backbone_mode that chooses it
    loss_name: ClassVar[str]  # the recognition loss's name in metrics.jsonl
    tells_language: ClassVar[bool] = False  # reads the language itself (ctc's prefix tokens)
    follows_route: ClassVar[bool] = True  # reads each utterance as its routed language
    counts_emissions: ClassVar[bool] = False  # `emitted` tells tokens per utterance (CTC's blank plateau)
    init_before_lid: ClassVar[bool] = False  # its random init drawn before the LID head's (model/hlora.py)
    tied_rows: list[torch.Tensor] | None = None  # CTC heads tied by symbol while a training begins

    def read(
        self,
        h: torch.Tensor,
        lengths: torch.Tensor,
        route: torch.Tensor | None,
        weights: torch.Tensor | None,
        ordered: bool = False,
    ) -> tuple[dict[str, Any], torch.Tensor | None]:
        """The ModelOutput fields it makes of the encoder output h (shape = (batch, frames,
        hidden)), each utterance read as `route` says (`ordered`: the batch sorted by it); and LID
        log-posteriors where it reads the language itself (else None)."""
        raise NotImplementedError

    def merge(self, dtype: torch.dtype | None = None) -> None:
        """Ready its own weights for inference (the model's merge(routed=True)), in `dtype` if
        given; unmerge undoes it."""

    def unmerge(self) -> None:
        """Undo merge."""

    def loss(
        self,
        model: nn.Module,
        feats: Features,
        batch: list[Example],
        routing_mode: str,
        objective: Objective,
        teacher: nn.Module | None = None,
        autocast: Autocast = nullcontext,
    ) -> tuple[ModelOutput, LossParts]:
        """A batch's forward (features already on the model's device) and its loss parts."""
        raise NotImplementedError

    def greedy_texts(
        self, model: nn.Module, out: ModelOutput, seconds: list[float], autocast: Autocast = nullcontext
    ) -> list[str]:
        """Each utterance's greedy text, read by its routed language (`seconds`: its audio's length)."""
        raise NotImplementedError

    def emitted(self, out: ModelOutput) -> list[int]:
        """Tokens greedy decoding emits per utterance, where that is known without decoding
        (`counts_emissions`: CTC's blank plateau, train/plateau.py)."""
        raise NotImplementedError

    def drop_unread_grads(self, read: set[int]) -> None:
        """After a compiled step's backward: the gradients of heads that read no utterance (not in
        `read`) back to None. A compiled step runs every head (model/compiled.py), so each gets a
        zero gradient, which AdamW would apply (momentum, weight decay); the eager step leaves
        them without one, and AdamW leaves them alone (in one process; across ranks the gradient
        average gives every head one in both)."""

    def tie_heads(self, config: ModelConfig) -> None:
        """Tie the heads by symbol while a training begins (--head-tie-steps): CTC heads only."""
        raise HloraError("--head-tie-steps ties CTC heads; this model has none")

    def lora_modules(self) -> list[LoRALinear]:
        """The LoRA it owns (in the backbone's layers it reads with)."""
        return []


class CTCReadout(CTCHeads, Readout):
    """CTC heads: one per language (each its own inventory, blank = 0), or one shared head whose
    inventory may hold `<xx>` prefix tokens (the ctc type: they give the language)."""

    kind = "ctc"
    loss_name = "ctc"
    counts_emissions = True

    def __init__(self, config: ModelConfig, backbone: Backbone) -> None:
        super().__init__(backbone.hidden_size, [len(v) for v in _inventories(config)])
        self.shared = config.shared_head
        self.prefix_ids = _prefix_ids(config) if config.model_type == "ctc" else None
        self._token_maps: dict[int, list[torch.Tensor]] = {}  # id(teacher) -> its heads' tokens in ours

    @property
    def tells_language(self) -> bool:  # type: ignore[override]
        return self.prefix_ids is not None

    @property
    def follows_route(self) -> bool:  # type: ignore[override]
        return not self.shared  # one shared head reads every language alike

    def read(self, h, lengths, route, weights, ordered=False):
        head_route = torch.zeros(h.shape[0], dtype=torch.long, device=h.device) if self.shared else route
        log_probs = self(h, head_route, ordered)
        every = self.every_head(h) if weights is not None and self.training else None
        lid = self.prefix_lid(log_probs, lengths) if self.prefix_ids is not None else None
        return {"ctc_logprobs": log_probs, "head_ctc_logprobs": every}, lid

    def prefix_lid(self, log_probs: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        """ctc: LID log-posteriors from the CTC posteriors of the prefix tokens (their total mass
        over the valid frames), normalised over the model's languages."""
        lp = log_probs[:, :, self.prefix_ids.to(log_probs.device)]
        lp = lp.masked_fill(~valid_mask(lengths, lp.shape[1])[..., None], float("-inf"))
        return torch.log_softmax(torch.logsumexp(lp, dim=1), dim=-1)

    def loss(self, model, feats, batch, routing_mode, objective, teacher=None, autocast=nullcontext):
        langs = _langs(batch, feats)
        layerwise = objective.layerwise(teacher)
        with autocast():
            out = model(feats, routing_mode, langs if routing_mode == "oracle" else None, hidden=layerwise)
        every = [e.targets_by_lang for e in batch] if out.head_ctc_logprobs is not None else None
        targets = [e.targets for e in batch]
        parts = joint_loss(out, langs, targets, self.vocab_sizes, objective.lid_weight, every)
        if teacher is None:
            return out, parts
        with torch.no_grad(), autocast():
            t_out = teacher(feats, "oracle", langs, hidden=layerwise)
        cos_w = objective.kd_cos_weight if layerwise else 0.0
        maps = self.token_maps(model.config.shared_vocab, teacher)
        return out, distill_loss(parts, out, t_out, langs, maps, cos_w, objective.kd_js_weight)

    def token_maps(self, vocab: list[str], teacher: nn.Module) -> list[torch.Tensor]:
        """For each head of the teacher (its languages' experts): our index of each of its tokens."""
        if id(teacher) not in self._token_maps:
            index = {t: i for i, t in enumerate(vocab)}
            device = self.heads[0].weight.device
            self._token_maps[id(teacher)] = [
                torch.tensor([index[t] for t in teacher.config.head_vocab(i)], dtype=torch.long, device=device)
                for i in range(len(teacher.languages))
            ]
        return self._token_maps[id(teacher)]

    def greedy_texts(self, model, out, seconds, autocast=nullcontext):
        log_probs, texts = out.ctc_logprobs.detach().float().cpu().numpy(), []
        for b, routed in enumerate(out.lang_ids.tolist()):
            vocab, n = model.vocab(routed), int(out.out_lengths[b])
            code = model.languages[routed]
            texts.append(greedy_hypothesis(log_probs[b, :n, : len(vocab)], vocab, code, 1.0).text)
        return texts

    def emitted(self, out):
        return emitted_tokens(out.ctc_logprobs.detach(), out.out_lengths).tolist()

    def drop_unread_grads(self, read: set[int]) -> None:
        if self.shared:  # one head reads every utterance
            return
        for i, head in enumerate(self.heads):
            if i not in read:
                for p in head.parameters():
                    p.grad = None

    def tie_heads(self, config: ModelConfig) -> None:
        self.tie_rows([config.head_vocab(i) for i in range(len(self.heads))])


def _inventories(config: ModelConfig) -> list[list[str]]:
    """The heads' token inventories: the shared one, or one per language (config order)."""
    if config.model_type in SHARED_HEAD_TYPES:
        vocabs = [config.shared_vocab]
        if not config.shared_vocab:
            raise HloraError(f"a {config.model_type} model needs a shared vocabulary (shared_vocab)")
    else:
        missing = [lang for lang in config.languages if lang not in config.vocabs]
        if missing:
            raise HloraError(
                f"language(s) {', '.join(missing)} have no token inventory, so no CTC head: add them to the vocab"
            )
        vocabs = [config.vocabs[lang] for lang in config.languages]
    for v in vocabs:
        if not v or v[0] != BLANK:
            raise HloraError(f"a token inventory must start with the blank '{BLANK}' (index 0)")
    return vocabs


def _prefix_ids(config: ModelConfig) -> torch.Tensor:
    vocab = config.shared_vocab
    missing = [lang for lang in config.languages if f"<{lang}>" not in vocab]
    if missing:
        raise HloraError(
            f"a ctc model reads its language from prefix tokens, but the shared vocabulary lacks "
            f"{', '.join(f'<{x}>' for x in missing)}: make it with `hlora prepare vocab --prefix-tokens`"
        )
    return torch.tensor([vocab.index(f"<{lang}>") for lang in config.languages])


class DecoderReadout(Readout):
    """Whisper's own decoder (model/whisper_decoder.py) with LoRA in its layers: one shared, or
    each language its own, routed as the encoder's top layers; the decoder is forced to each
    utterance's routed language token. Its parameters stay in the backbone (the LoRA modules are
    only listed here), so a model directory names them as before."""

    kind = "seq2seq"
    loss_name = "ce"  # the decoder's cross-entropy
    init_before_lid = True

    def __init__(self, config: ModelConfig, backbone: Backbone) -> None:
        super().__init__()
        n = 1 if config.decoder_lora == "shared" else len(config.languages)
        decoder_lora: list[LoRALinear] = []
        for i, layer in enumerate(backbone.decoder_layers()):
            decoder_lora += inject_decoder_lora(layer, n, config.lora, f"whisper decoder layer {i + 1}")
        self.decoder_lora = decoder_lora  # a plain list: not registered twice

    def read(self, h, lengths, route, weights, ordered=False):
        return {"encoder_out": h}, None

    def lora_modules(self) -> list[LoRALinear]:
        return self.decoder_lora

    def decode(
        self,
        model: nn.Module,
        out: ModelOutput,
        input_ids: torch.Tensor,
        hidden: bool = False,
    ) -> tuple[torch.Tensor, list[torch.Tensor]]:
        """Teacher-forced: the decoder's logits, shape = (batch, tokens, vocab), with each
        utterance's routed (or shared) decoder LoRA; and, with `hidden`, every decoder layer's output."""
        bb, enc = model.backbone, out.encoder_out
        with bb.masked(out.out_lengths, enc.shape[1]), routing(self.decoder_lora, out.lang_ids, out.route_weights):
            dec = bb.decoder(
                input_ids=input_ids.to(enc.device),
                encoder_hidden_states=enc,
                output_hidden_states=hidden,
                use_cache=False,
            )
        states = list(dec.hidden_states[1:]) if hidden else []
        return bb.proj_out(dec.last_hidden_state), states

    def teacher_forced(
        self, model: nn.Module, out: ModelOutput, targets: list[list[int]], hidden: bool
    ) -> tuple[torch.Tensor, torch.Tensor, list[torch.Tensor]]:
        """The decoder's logits on each utterance's transcript after its routed language's prefix,
        the labels, and (with `hidden`) every decoder layer's output."""
        bb = model.backbone
        codes = [model.languages[i] for i in out.lang_ids.tolist()]
        inputs, labels = teacher_forcing(bb.prefix(codes), targets, bb.eot)
        logits, states = self.decode(model, out, inputs, hidden)
        return logits, labels, states

    def loss(self, model, feats, batch, routing_mode, objective, teacher=None, autocast=nullcontext):
        langs = _langs(batch, feats)
        targets = [e.targets for e in batch]
        layerwise = objective.layerwise(teacher)
        with autocast():
            out = model(feats, routing_mode, langs if routing_mode == "oracle" else None, hidden=layerwise)
            logits, labels, dec_states = self.teacher_forced(model, out, targets, layerwise)
        parts = seq2seq_loss(logits, labels, out, langs, objective.lid_weight)
        if teacher is None:
            return out, parts
        with torch.no_grad(), autocast():
            t_out = teacher(feats, "oracle", langs, hidden=layerwise)
            t_logits, _, t_dec = teacher.readout.teacher_forced(teacher, t_out, targets, layerwise)
        token_lengths = torch.tensor([PREFIX_TOKENS + len(t) for t in targets], device=langs.device)
        parts = seq2seq_distill_loss(
            parts,
            out.hidden + dec_states if layerwise else None,
            t_out.hidden + t_dec if layerwise else None,
            len(out.hidden) if out.hidden is not None else 0,
            out.out_lengths,
            token_lengths,
            logits,
            t_logits,
            labels,
            objective.kd_cos_weight if layerwise else 0.0,
            objective.kd_js_weight,
        )
        return out, parts

    def greedy_texts(self, model, out, seconds, autocast=nullcontext):
        with autocast():
            ids = generate(model, out, max_new_tokens=[token_budget(s) for s in seconds])
        return [model.backbone.decode_tokens(t) for t in ids]


READOUTS: dict[str, type[Readout]] = {r.kind: r for r in (CTCReadout, DecoderReadout)}


def make_readout(config: ModelConfig, backbone: Backbone) -> Readout:
    """The readout the config names (its backbone_mode), built on `backbone`."""
    return READOUTS[config.backbone_mode](config, backbone)
