"""Dataclass configs of a model: written to config.json beside the weights, so a model directory
rebuilds itself with no other flag."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from hlora_cli.errors import HloraError

# ctc         : the paper's LoRA-free, fully fine-tuned CTC model (S1/S2); shared vocabulary whose
#               transcripts start with a language-prefix token, which also gives its language
# shared-lora : shared LoRA in every layer, a LID head and one shared CTC head (parameter-matched)
# lidlora     : per-language LoRA in every layer and per-language CTC heads (S3/S4)
# hlora       : shared LoRA in layers 1..k, LID head after layer k, per-language LoRA in k+1..N (S5/S6)
# The LoRA-language-experts paper's systems:
# expert      : one language's LoRA in every layer and its CTC head, trained on its own
# mole        : experts fused (learned weights) in layers 1..l1, a router (LID head) after layer l1,
#               each language's own expert in l1+1..N (`hlora fuse`)
# student     : one shared LoRA distilled from experts, a LID head and one shared head (`hlora distill`)
MODEL_TYPES = ("ctc", "shared-lora", "lidlora", "hlora", "expert", "mole", "student")
MODEL_TYPE_ALIASES = {"baseline": "shared-lora"}  # the name before the LoRA-free ctc type existed
SHARED_HEAD_TYPES = ("ctc", "shared-lora", "student")
# The model types built from trained experts (their LoRA and heads loaded from expert directories).
FROM_EXPERTS = ("mole", "student")
# LoRA targets by the names used in the papers; each backbone maps them to its own module paths.
LORA_TARGETS = ("q", "k", "v", "out", "ff_in", "ff_out")
LID_HEADS = ("pooled", "frame")
# What reads the encoder: a CTC head per language (any backbone), or Whisper's own decoder
# (seq2seq: Whisper backbones only; LoRA in its layers too, cross-entropy on Whisper's tokens).
BACKBONE_MODES = ("ctc", "seq2seq")
# seq2seq: what the encoder sees. "30s" is Whisper's own input (every utterance padded to 30 s,
# nothing masked); "true-length" runs each utterance's own frames, masked in self- and cross-attention.
ENCODER_INPUTS = ("30s", "true-length")
# config.json format: 1 = `k` counted the routed top layers (before the paper's definition);
# 2 = `k` counts the shared lower layers, and `layout` spells the layers out.
FORMAT_VERSION = 2


def canonical_model_type(name: str) -> str:
    name = MODEL_TYPE_ALIASES.get(name, name)
    if name not in MODEL_TYPES:
        raise HloraError(f"unknown model type '{name}': choose from {', '.join(MODEL_TYPES)}")
    return name


@dataclass
class LoRAConfig:
    rank: int = 8
    alpha: float = 16.0
    dropout: float = 0.0
    targets: list[str] = field(default_factory=lambda: list(LORA_TARGETS))


@dataclass
class LIDConfig:
    head: str = "pooled"  # "pooled" (per-frame norm, pooling, MLP) or "frame" (per-frame softmax, averaged)
    pooling: str = "mean"  # pooled head: "mean" or "attentive" (attentive statistics pooling)
    hidden: int = 256


@dataclass
class Layout:
    """Which encoder layers (1-based) carry shared LoRA, which per-language (routed) LoRA, which
    the experts' LoRA fused with learned weights (mole), which are fully fine-tuned, and after
    which layer the LID head reads (None: no LID head)."""

    shared: list[int] = field(default_factory=list)
    routed: list[int] = field(default_factory=list)
    finetuned: list[int] = field(default_factory=list)
    lid_after: int | None = None
    fused: list[int] = field(default_factory=list)
    decoder: str = ""  # seq2seq: the decoder layers' LoRA, "shared" or "routed" (per language)

    def describe(self) -> str:
        parts = []
        for layers, what in (
            (self.finetuned, "fully fine-tuned"),
            (self.shared, "shared LoRA"),
            (self.fused, "experts fused"),
        ):
            if layers:
                parts.append(f"{_span(layers)} {what}")
        if self.lid_after is not None:
            parts.append(f"LID after layer {self.lid_after}")
        if self.routed:
            parts.append(f"{_span(self.routed)} per language")
        if self.decoder:
            parts.append("decoder " + ("shared LoRA" if self.decoder == "shared" else "per language"))
        return ", ".join(parts) or "no trained encoder layer"


def layer_plan(
    model_type: str, num_layers: int, k: int | None, freeze_layers: int = 0, l1: int | None = None
) -> Layout:
    """The layout of a model type on an encoder of `num_layers` layers (k as the HLoRA paper
    defines it: the number of shared lower layers; l1 as the experts paper: the fused lower layers)."""
    every = list(range(1, num_layers + 1))
    if model_type == "ctc":
        if not 0 <= freeze_layers < num_layers:
            raise HloraError(f"--freeze-layers {freeze_layers} must be in 0..{num_layers - 1} for {num_layers} layers")
        return Layout(finetuned=every[freeze_layers:])
    if model_type in ("shared-lora", "student"):
        return Layout(shared=every, lid_after=num_layers)
    if model_type in ("lidlora", "expert"):
        return Layout(routed=every)
    if model_type == "mole":
        if l1 is None or not 1 <= l1 <= num_layers - 1:
            raise HloraError(
                f"l1={l1} is outside 1..{num_layers - 1} for a {num_layers}-layer encoder: layers 1..l1 fuse the "
                f"experts, the router reads layer l1, l1+1..{num_layers} are each language's expert; "
                "set --l1 in that range"
            )
        return Layout(fused=every[:l1], routed=every[l1:], lid_after=l1)
    if k is None or not 1 <= k <= num_layers - 1:
        raise HloraError(
            f"k={k} is outside 1..{num_layers - 1} for a {num_layers}-layer encoder: k counts the shared lower "
            f"layers (1..k shared LoRA, LID after layer k, k+1..{num_layers} per language); set --k in that range"
        )
    return Layout(shared=every[:k], routed=every[k:], lid_after=k)


def resolve_layout(config: ModelConfig, num_layers: int) -> Layout:
    """The layout of `config`, upgrading a format-1 config (its k counted the routed top layers)."""
    if config.format_version < 2 and config.model_type == "hlora" and config.k is not None:
        config.k = num_layers - config.k
    layout = layer_plan(config.model_type, num_layers, config.k, config.freeze_layers, config.l1)
    layout.decoder = config.decoder_lora
    if config.layout is not None and config.layout != layout:
        raise HloraError(
            f"config layout ({config.layout.describe()}) does not match {config.model_type} with k={config.k} "
            f"on {num_layers} layers ({layout.describe()})"
        )
    config.layout, config.format_version = layout, 2
    return layout


def _span(layers: list[int]) -> str:
    if len(layers) == 1:
        return f"layer {layers[0]}"
    if layers == list(range(layers[0], layers[-1] + 1)):
        return f"layers {layers[0]}-{layers[-1]}"
    return "layers " + ",".join(map(str, layers))


@dataclass
class BackboneRef:
    """Where the frozen encoder comes from: a local directory or hub id (`source`), or, for tests,
    a transformers config dict built with random weights from `seed`."""

    kind: str  # "whisper", "hubert" or "wav2vec2"
    source: str | None = None
    config: dict[str, Any] | None = None
    seed: int = 0
    fingerprint: str = ""
    # seq2seq on a random config (tests): where Whisper's tokenizer and generation config come from
    tokenizer: str | None = None


@dataclass
class ModelConfig:
    model_type: str
    backbone: BackboneRef
    languages: list[str]
    # Per-language token inventories (blank first) for lidlora/hlora; ctc and shared-lora use shared_vocab.
    vocabs: dict[str, list[str]] = field(default_factory=dict)
    shared_vocab: list[str] = field(default_factory=list)
    k: int | None = None  # hlora only: layers 1..k carry shared LoRA, k+1..N per-language LoRA
    lora: LoRAConfig = field(default_factory=LoRAConfig)
    lid: LIDConfig = field(default_factory=LIDConfig)
    freeze_layers: int = 0  # ctc only: the lowest N transformer layers stay frozen too
    # Sentencepiece models (serialized, base64) of BPE inventories, by language or "shared":
    # what training needs to encode text; decoding reads the pieces from the inventories alone.
    bpe_models: dict[str, str] = field(default_factory=dict)
    l1: int | None = None  # mole only: layers 1..l1 fuse the experts, the router reads layer l1's output
    # mole and student: the expert model directories they were built from (a record: the weights
    # are copied into this model's own file)
    experts: list[str] = field(default_factory=list)
    backbone_mode: str = "ctc"  # "ctc" or "seq2seq" (Whisper's decoder, see BACKBONE_MODES)
    encoder_input: str = "30s"  # seq2seq only, see ENCODER_INPUTS
    layout: Layout | None = None  # filled in by the model core from model_type, k and the encoder depth
    format_version: int = FORMAT_VERSION

    def __post_init__(self) -> None:
        for name in ("k", "l1"):  # counts of layers: a string or a boolean here is a hand-edited config
            value = getattr(self, name)
            if value is not None and (not isinstance(value, int) or isinstance(value, bool)):
                raise HloraError(f"{name} must be a whole number of layers, got {value!r}")
        self.model_type = canonical_model_type(self.model_type)
        if self.backbone_mode not in BACKBONE_MODES:
            raise HloraError(f"unknown backbone mode '{self.backbone_mode}': choose {', '.join(BACKBONE_MODES)}")
        if self.encoder_input not in ENCODER_INPUTS:
            raise HloraError(f"unknown encoder input '{self.encoder_input}': choose {', '.join(ENCODER_INPUTS)}")
        if self.seq2seq and self.backbone.kind != "whisper":
            raise HloraError(f"seq2seq needs a Whisper backbone (its decoder), not {self.backbone.kind}")
        if self.seq2seq and self.model_type == "ctc":
            raise HloraError("the ctc model type has no seq2seq form: choose a LoRA type (shared-lora, hlora...)")

    @property
    def seq2seq(self) -> bool:
        return self.backbone_mode == "seq2seq"

    @property
    def shared_head(self) -> bool:
        return self.model_type in SHARED_HEAD_TYPES

    @property
    def decoder_lora(self) -> str:
        """seq2seq: the decoder's LoRA, "shared" or "routed" (each language its own, as the encoder's
        top layers); "" for ctc models."""
        if not self.seq2seq:
            return ""
        return "shared" if self.shared_head else "routed"

    @property
    def one_language(self) -> bool:
        """An expert: one language and nothing that tells languages apart (no LID head, no
        prefix tokens), so none needs identifying."""
        lid_after = self.layout.lid_after if self.layout is not None else 0
        return len(self.languages) == 1 and not lid_after and self.model_type != "ctc"

    def head_vocab(self, lang: int) -> list[str]:
        """Token inventory of the CTC head that language index `lang` decodes with."""
        return self.shared_vocab if self.shared_head else self.vocabs[self.languages[lang]]

    def language_indices(self, codes: list[str]) -> list[int]:
        """Language codes -> indices; a language without a head is a clear error."""
        unknown = sorted({c for c in codes if c not in self.languages})
        if unknown:
            raise HloraError(
                f"language(s) {', '.join(unknown)} have no LoRA/head in this model "
                f"(it knows {', '.join(self.languages)})"
            )
        return [self.languages.index(c) for c in codes]

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> ModelConfig:
        d = dict(d)
        d["backbone"] = BackboneRef(**d["backbone"])
        d["lora"] = LoRAConfig(**d.get("lora", {}))
        d["lid"] = LIDConfig(**d.get("lid", {}))
        d["layout"] = Layout(**d["layout"]) if d.get("layout") else None
        d.setdefault("format_version", 1)  # written before the field existed: k counted routed layers
        version = d["format_version"]
        if not isinstance(version, int) or isinstance(version, bool) or version < 1:
            raise HloraError(f"format_version {version!r} is not a format version")
        if version > FORMAT_VERSION:
            raise HloraError(
                f"format_version {version}: written by a newer hlora (this one reads up to {FORMAT_VERSION}); "
                "upgrade hlora to load it"
            )
        return cls(**d)
