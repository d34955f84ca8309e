"""Frozen speech encoders behind one small interface, run layer by layer so the model can route
between layers.

    waveforms --prepare--> Features --embed--> h (B, T, D) --layer(i) x L--> --finish--> h

`prepare` is the feature frontend (model/frontend.py), which the data loader's workers also run.
"""

from __future__ import annotations

import hashlib
import json
import pickle
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch
from torch import nn

from hlora_cli.data.features import SAMPLE_RATE, Features, Frontend, LogMelFrontend, WaveformFrontend
from hlora_cli.errors import HloraError
from hlora_cli.model.config import BackboneRef

__all__ = ["SAMPLE_RATE", "Backbone", "Features", "SelfSupervisedBackbone", "WhisperBackbone"]


def additive_mask(lengths: torch.Tensor, n: int, dtype: torch.dtype) -> torch.Tensor | None:
    """(B, 1, n, n) additive attention mask hiding padded keys, or None when nothing is padded
    (always a mask while tracing for ONNX or compiling: the graph must hold for padded batches too,
    and asking the GPU whether anything is padded would stop the host until it answers)."""
    if not (torch.jit.is_tracing() or torch.compiler.is_compiling()) and bool((lengths == n).all()):
        return None
    valid = torch.arange(n, device=lengths.device)[None, :] < lengths[:, None]
    mask = torch.zeros(valid.shape, dtype=dtype, device=lengths.device)
    mask.masked_fill_(~valid, torch.finfo(dtype).min)
    return mask[:, None, None, :].expand(-1, 1, n, n)


def group_normed_frontend(fe: nn.Module, x: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
    """A HuBERT-base-style conv feature encoder (`feat_extract_norm` "group": its first layer's
    group norm, one group per channel, normalises each channel over time) on a padded batch, its
    statistics taken over each utterance's own frames: every valid output frame is what the
    utterance alone gives. One batched call with no host sync (the eager per-utterance loop reads
    the lengths on the host), so a compiled forward can hold it."""
    first = fe.conv_layers[0]
    norm = first.layer_norm
    if norm.num_groups != norm.num_channels:
        raise HloraError(f"a group-norm frontend with {norm.num_groups} groups for {norm.num_channels} channels")
    h = first.conv(x[:, None])
    # valid frames of each row: the convolution's output length of its true samples
    n = torch.div(lengths - first.conv.kernel_size[0], first.conv.stride[0], rounding_mode="floor") + 1
    keep = (torch.arange(h.shape[-1], device=h.device)[None, :] < n[:, None])[:, None, :].float()
    h = h.float()  # autocast runs group norm in fp32 too
    count = n.clamp_min(1)[:, None, None].float()
    mean = (h * keep).sum(-1, keepdim=True) / count
    var = ((h - mean).square() * keep).sum(-1, keepdim=True) / count
    h = (h - mean) * torch.rsqrt(var + norm.eps) * norm.weight[:, None] + norm.bias[:, None]
    h = first.activation(h)
    for layer in fe.conv_layers[1:]:
        h = layer(h)
    return h


def fingerprint(module: nn.Module) -> str:
    """A short, cheap hash of a module's weights: names, shapes and a strided sample of values.
    Enough to tell two checkpoints apart without hashing hundreds of MB."""
    h = hashlib.sha256()
    for name, t in sorted(module.state_dict().items()):
        flat = t.detach().reshape(-1).float()
        step = max(1, flat.numel() // 2048)
        h.update(f"{name}:{tuple(t.shape)}:{t.dtype}".encode())
        h.update(flat[::step].cpu().numpy().tobytes())
    return h.hexdigest()[:16]


class Backbone(nn.Module):
    """A frozen encoder. Subclasses set `kind`, `hidden_size`, `num_layers`, `frames_per_second`,
    `min_samples` (shortest audio that yields one output frame) and `target_paths` (LoRA target
    name -> module path inside one layer); `max_seconds` where the encoder takes no longer input."""

    kind: str
    hidden_size: int
    num_layers: int
    frames_per_second: float
    min_samples: int
    target_paths: dict[str, str]
    max_seconds: float | None = None
    per_utterance_frontend = False  # the frontend normalises over time: run it one utterance at a time

    def layers(self) -> nn.ModuleList:
        raise NotImplementedError

    @property
    def module(self) -> nn.Module:
        """The transformers module this wraps (an encoder: what exports hand to other tools)."""
        raise NotImplementedError

    frontend: Frontend

    def prepare(self, waveforms: list[np.ndarray | torch.Tensor]) -> Features:
        return self.frontend(waveforms)

    def embed(self, feats: Features) -> tuple[torch.Tensor, torch.Tensor]:
        """Frontend to the input of layer 1: h (B, T, D) and output lengths (B,)."""
        raise NotImplementedError

    def layer(self, i: int, h: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
        return self.layers()[i](h, attention_mask=mask)

    def finish(self, h: torch.Tensor) -> torch.Tensor:
        """What follows the last layer (a final layer norm where the encoder has one)."""
        return h

    def freeze(self) -> Backbone:
        self.requires_grad_(False)
        return self

    def unfreeze(self, layers: list[int]) -> None:
        """Full fine-tuning (the LoRA-free ctc model): the transformer layers `layers` (0-based) and
        what follows them train; the convolutional frontend stays frozen. What lies between the
        frontend and layer 1 trains only when layer 1 does."""
        for i in layers:
            self.layers()[i].requires_grad_(True)
        self.after_layers().requires_grad_(True)
        if 0 in layers:
            for m in self.before_layers():
                m.requires_grad_(True)

    def before_layers(self) -> list[nn.Module]:
        """Trainable modules between the frontend and layer 1."""
        return []

    def after_layers(self) -> nn.Module:
        """The module after the last layer (a final layer norm), or an empty one."""
        return nn.Identity()


class WhisperBackbone(Backbone):
    """The encoder of an HF Whisper model, run on each utterance's true length (never padded to 30 s)
    by slicing the sinusoidal position table; padded batches are masked in attention."""

    kind = "whisper"
    frames_per_second = 50.0
    min_samples = 320  # two 10 ms mel frames -> one 20 ms output frame
    target_paths = {
        "q": "self_attn.q_proj",
        "k": "self_attn.k_proj",
        "v": "self_attn.v_proj",
        "out": "self_attn.out_proj",
        "ff_in": "fc1",
        "ff_out": "fc2",
    }

    def __init__(self, encoder: nn.Module, feature_extractor) -> None:
        super().__init__()
        self.encoder = encoder
        self.feature_extractor = feature_extractor
        self.hidden_size = encoder.config.d_model
        self.num_layers = encoder.config.encoder_layers
        self.max_frames = encoder.config.max_source_positions * 2  # mel frames: 100 a second
        self.max_seconds = self.max_frames / 100
        self.frontend = LogMelFrontend(self.min_samples, self.kind, feature_extractor, self.max_frames)

    def layers(self) -> nn.ModuleList:
        return self.encoder.layers

    @property
    def module(self) -> nn.Module:
        return self.encoder

    def embed(self, feats: Features) -> tuple[torch.Tensor, torch.Tensor]:
        enc = self.encoder
        x = feats.values.to(enc.conv1.weight.dtype)
        n_in = x.shape[-1]
        valid_in = torch.arange(n_in, device=x.device)[None, :] < feats.lengths[:, None]
        x = nn.functional.gelu(enc.conv1(x))
        # conv2 looks one frame past each utterance's end: make that frame the zero an unpadded
        # utterance would see, so padding never changes a result.
        x = x * valid_in[:, None, :].to(x.dtype)
        x = nn.functional.gelu(enc.conv2(x)).permute(0, 2, 1)
        lengths = (feats.lengths + 1) // 2
        h = x + enc.embed_positions.weight[: x.shape[1]]
        h = nn.functional.dropout(h, p=enc.config.dropout, training=self.training)
        return h, lengths

    def layer(self, i: int, h: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
        return self.encoder.layers[i](h, mask)

    def finish(self, h: torch.Tensor) -> torch.Tensor:
        return self.encoder.layer_norm(h)

    def after_layers(self) -> nn.Module:
        return self.encoder.layer_norm  # conv1/conv2 (frontend) and the sinusoidal positions stay frozen


class SelfSupervisedBackbone(Backbone):
    """HuBERT or wav2vec2 (`HubertModel`, `Wav2Vec2Model`, e.g. mHuBERT-147) on raw 16 kHz audio."""

    target_paths = {
        "q": "attention.q_proj",
        "k": "attention.k_proj",
        "v": "attention.v_proj",
        "out": "attention.out_proj",
        "ff_in": "feed_forward.intermediate_dense",
        "ff_out": "feed_forward.output_dense",
    }

    def __init__(self, model: nn.Module, do_normalize: bool) -> None:
        super().__init__()
        self.model = model
        cfg = model.config
        self.kind = cfg.model_type
        self.hidden_size = cfg.hidden_size
        self.num_layers = cfg.num_hidden_layers
        self.do_normalize = do_normalize
        self.stable_layer_norm = bool(cfg.do_stable_layer_norm)
        # Group norm in the conv frontend normalises over time, so padding would leak into the
        # statistics: such models get their frontend run per utterance (compiled: statistics masked).
        self.per_utterance_frontend = cfg.feat_extract_norm == "group"
        self.min_samples = self._min_samples()
        self.frontend = WaveformFrontend(self.min_samples, self.kind, do_normalize)
        self.frames_per_second = SAMPLE_RATE / float(np.prod(cfg.conv_stride))

    def _min_samples(self) -> int:
        cfg, n = self.model.config, 1
        for kernel, stride in reversed(list(zip(cfg.conv_kernel, cfg.conv_stride, strict=True))):
            n = (n - 1) * stride + kernel
        return n

    def layers(self) -> nn.ModuleList:
        return self.model.encoder.layers

    @property
    def module(self) -> nn.Module:
        return self.model

    def _conv_frontend(self, feats: Features) -> torch.Tensor:
        fe = self.model.feature_extractor
        x = feats.values.to(self.model.feature_projection.projection.weight.dtype)
        # ONNX: the runtime feeds one utterance, whose statistics the plain group norm takes
        if not self.per_utterance_frontend or torch.jit.is_tracing():
            return fe(x).transpose(1, 2)
        if torch.compiler.is_compiling():  # no host sync in a graph: one batched call, its statistics masked
            return group_normed_frontend(fe, x, feats.lengths).transpose(1, 2)
        # Eager: one call per utterance, measured 2.8x faster on a CPU than the masked batched call
        # (8 utterances of 0.9-4 s, HuBERT-base frontend: padding and a norm in four passes)
        lengths = feats.lengths.tolist()  # one device sync, not one per utterance
        if len(set(lengths)) == 1 and lengths[0] == x.shape[1]:  # nothing padded: the batch is one call
            return fe(x).transpose(1, 2)
        outs = [fe(x[i : i + 1, :n]).transpose(1, 2) for i, n in enumerate(lengths)]
        t = max(o.shape[1] for o in outs)
        return torch.cat([nn.functional.pad(o, (0, 0, 0, t - o.shape[1])) for o in outs])

    def embed(self, feats: Features) -> tuple[torch.Tensor, torch.Tensor]:
        m = self.model
        lengths = m._get_feat_extract_output_lengths(feats.lengths).long()
        h = m.feature_projection(self._conv_frontend(feats))
        if isinstance(h, tuple):  # wav2vec2 also returns the unprojected features
            h = h[0]
        valid = torch.arange(h.shape[1], device=h.device)[None, :] < lengths[:, None]
        h = h * valid[..., None].to(h.dtype)  # the positional conv must see zeros past the end
        h = h + m.encoder.pos_conv_embed(h)
        if not self.stable_layer_norm:
            h = m.encoder.layer_norm(h)
        return m.encoder.dropout(h), lengths

    def finish(self, h: torch.Tensor) -> torch.Tensor:
        return self.model.encoder.layer_norm(h) if self.stable_layer_norm else h

    def before_layers(self) -> list[nn.Module]:
        m = self.model
        norm = [] if self.stable_layer_norm else [m.encoder.layer_norm]  # post-norm encoders normalise before layer 1
        return [m.feature_projection, m.encoder.pos_conv_embed, *norm]

    def after_layers(self) -> nn.Module:
        return self.model.encoder.layer_norm if self.stable_layer_norm else nn.Identity()

    def freeze(self) -> Backbone:
        # Also tell transformers: otherwise its conv feature encoder marks its input as requiring
        # grad in training mode, and every backward runs through the whole frontend for nothing.
        self.model.feature_extractor._freeze_parameters()
        return super().freeze()


def _hf_config(ref: BackboneRef):
    from transformers import HubertConfig, Wav2Vec2Config, WhisperConfig

    cls = {"whisper": WhisperConfig, "hubert": HubertConfig, "wav2vec2": Wav2Vec2Config}[ref.kind]
    cfg = cls(**(ref.config or {}))
    cfg._attn_implementation = "sdpa"
    return cfg


def detect_kind(source: str) -> str:
    """The backbone kind of a local directory or hub id, from its config's model_type."""
    from transformers import AutoConfig

    try:
        model_type = AutoConfig.from_pretrained(source).model_type
    except (OSError, ValueError) as e:
        why = str(e).splitlines()[0][:200] if str(e) else type(e).__name__
        raise HloraError(f"{source}: not a transformers model directory or reachable hub id ({why})") from e
    if model_type not in ("whisper", "hubert", "wav2vec2"):
        raise HloraError(f"{source}: model_type '{model_type}' is not supported (whisper, hubert, wav2vec2)")
    return model_type


def _hubert_do_normalize(ref: BackboneRef, cfg) -> bool:
    """Waveform normalisation as the model's own preprocessor config says; without one, the
    transformers convention (layer-norm frontends were trained on normalised audio)."""
    from transformers import Wav2Vec2FeatureExtractor

    if ref.source is not None:
        try:
            return bool(Wav2Vec2FeatureExtractor.from_pretrained(ref.source).do_normalize)
        except OSError:
            pass
    return cfg.feat_extract_norm == "layer"


def quiet_transformers() -> None:
    """No per-load progress bars from transformers: in log files they are noise."""
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()


def load_backbone(ref: BackboneRef, encoder_input: str | None = None) -> Backbone:
    """Build the frozen encoder `ref` describes, in eval mode, and record its fingerprint. With
    `encoder_input` (seq2seq), the whole Whisper: encoder and decoder (model/whisper_decoder.py)."""
    quiet_transformers()
    if ref.kind not in ("whisper", "hubert", "wav2vec2"):
        raise HloraError(f"backbone kind '{ref.kind}' is not supported (whisper, hubert, wav2vec2)")
    if ref.source is None and ref.config is None:
        raise HloraError("a backbone needs a source (directory or hub id) or a config")
    if ref.source is not None:
        _check_kind(ref)
        try:
            return _load_backbone(ref, encoder_input)
        except pickle.UnpicklingError as e:  # torch's weights_only loader met more than tensors
            raise HloraError(
                f"{ref.source}: its pytorch_model.bin holds pickled objects beyond tensors: refused, nothing in it "
                "was run; give the model as model.safetensors"
            ) from e
        except (OSError, ValueError) as e:  # a missing directory, a bad config.json, no hub access
            looks_local = Path(ref.source).expanduser().exists() or ref.source.startswith((".", "/", "~"))
            what = "cannot be loaded" if looks_local else "is not a local directory, and the hub id cannot be loaded"
            raise HloraError(f"{ref.source}: backbone {what} ({str(e).splitlines()[0][:200]})") from e
        except Exception as e:
            if type(e).__name__ != "SafetensorError":
                raise
            raise HloraError(f"{ref.source}: model.safetensors is not readable (cut short or corrupt: {e})") from e
    return _load_backbone(ref, encoder_input)


def _check_kind(ref: BackboneRef) -> None:
    """A local backbone of another kind than the config names (a HuBERT given for a Whisper model)
    is named as such, before transformers fails somewhere inside on its shapes."""
    config = Path(ref.source).expanduser() / "config.json"
    try:
        found = json.loads(config.read_text(encoding="utf-8")).get("model_type")
    except (OSError, ValueError, AttributeError):
        return  # not local, or no readable config: the loader says what is wrong
    if isinstance(found, str) and found != ref.kind:
        raise HloraError(f"{ref.source}: is a {found} model, and this model was built on a {ref.kind} backbone")


@contextmanager
def seeded(seed: int) -> Iterator[None]:
    """Random weights from `seed`, the global RNG untouched: a library call never reseeds it. A
    fork of the CPU generator (the weights are built on the CPU; torch.manual_seed would also
    reseed every CUDA device)."""
    with torch.random.fork_rng(devices=[]):
        torch.random.default_generator.manual_seed(seed)
        yield


def whisper_features(source: str | None, num_mel_bins: int):
    """Whisper's feature extractor from `source`, or the default one of that many mel bins where
    `source` has none (a random config, a directory without preprocessor_config.json)."""
    from transformers import WhisperFeatureExtractor

    if source is not None:
        try:
            return WhisperFeatureExtractor.from_pretrained(source)
        except OSError:
            pass
    return WhisperFeatureExtractor(feature_size=num_mel_bins)


def _load_backbone(ref: BackboneRef, encoder_input: str | None = None) -> Backbone:
    from transformers import AutoModel, WhisperModel
    from transformers.models.whisper.modeling_whisper import WhisperEncoder

    if encoder_input is not None:
        cfg = _hf_config(ref) if ref.source is None else None
        backbone: Backbone = load_seq2seq(ref.source, cfg, ref.tokenizer, ref.seed, encoder_input)
    elif ref.kind == "whisper":
        if ref.source is not None:
            encoder = WhisperModel.from_pretrained(ref.source, attn_implementation="sdpa").get_encoder()
        else:
            with seeded(ref.seed):
                encoder = WhisperEncoder(_hf_config(ref))
        fe = whisper_features(ref.source, encoder.config.num_mel_bins)
        backbone = WhisperBackbone(encoder, fe)
    else:
        if ref.source is not None:
            model = AutoModel.from_pretrained(ref.source, attn_implementation="sdpa")
            if model.config.model_type != ref.kind:
                raise HloraError(f"{ref.source}: is a {model.config.model_type} model, not {ref.kind}")
        else:
            from transformers import HubertModel, Wav2Vec2Model

            with seeded(ref.seed):
                model = (HubertModel if ref.kind == "hubert" else Wav2Vec2Model)(_hf_config(ref))
        backbone = SelfSupervisedBackbone(model, do_normalize=_hubert_do_normalize(ref, model.config))
    backbone.fingerprint = fingerprint(backbone)
    return backbone.freeze().eval()


class WhisperSeq2SeqBackbone(WhisperBackbone):
    """WhisperForConditionalGeneration behind the backbone interface: `encoder` as WhisperBackbone,
    plus `decoder` and `proj_out` (registered, so they move and freeze with the backbone) and the
    full model for transformers' `generate` (not registered twice)."""

    def __init__(self, generator: nn.Module, feature_extractor, tokenizer, encoder_input: str) -> None:
        super().__init__(generator.model.encoder, feature_extractor)
        self.decoder = generator.model.decoder
        self.proj_out = generator.proj_out
        object.__setattr__(self, "generator", generator)
        self.tokenizer = tokenizer
        self.encoder_input = encoder_input
        self.pad_to_window = encoder_input == "30s"
        self.frontend = replace(self.frontend, pad_to_max=self.pad_to_window)
        gen = generator.generation_config
        if not getattr(gen, "lang_to_id", None):
            raise HloraError("this Whisper has no language tokens (generation_config.lang_to_id): not multilingual")
        self.lang_to_id = {tok.strip("<|>"): i for tok, i in gen.lang_to_id.items()}
        self.cross_mask: torch.Tensor | None = None  # (batch, frames) True where a frame is real
        for layer in self.decoder.layers:
            layer.encoder_attn.register_forward_pre_hook(self._mask_cross_attention, with_kwargs=True)

    def decoder_layers(self) -> nn.ModuleList:
        return self.decoder.layers

    @property
    def max_target_positions(self) -> int:
        return self.decoder.config.max_target_positions

    # --- tokens ---------------------------------------------------------------------------
    def language_token(self, code: str) -> int:
        if code not in self.lang_to_id:
            raise HloraError(f"Whisper has no language token for '{code}'")
        return self.lang_to_id[code]

    def prefix(self, codes: list[str]) -> torch.Tensor:
        """The decoder's forced start per utterance, shape = (batch, 4)."""
        gen = self.generator.generation_config
        task = gen.task_to_id["transcribe"]
        rows = [[gen.decoder_start_token_id, self.language_token(c), task, gen.no_timestamps_token_id] for c in codes]
        return torch.tensor(rows, dtype=torch.long)

    def encode_text(self, text: str) -> list[int]:
        """Whisper's tokens of a transcript, without prefix and end token."""
        return self.tokenizer.encode(text, add_special_tokens=False)

    def decode_tokens(self, ids: list[int]) -> str:
        return self.tokenizer.decode(ids, skip_special_tokens=True).strip()

    @property
    def eot(self) -> int:
        return self.generator.generation_config.eos_token_id

    # --- cross-attention mask (true-length input) ------------------------------------------
    def _mask_cross_attention(self, module: nn.Module, args: tuple, kwargs: dict):
        mask = self.cross_mask
        if mask is None:
            return None
        h = args[0] if args else kwargs["hidden_states"]
        if h.shape[0] != mask.shape[0]:  # beam search: each utterance's row repeated per beam
            mask = mask.repeat_interleave(h.shape[0] // mask.shape[0], dim=0)
        kwargs["attention_mask"] = mask[:, None, None, :]
        return args, kwargs

    @contextmanager
    def masked(self, lengths: torch.Tensor, frames: int) -> Iterator[None]:
        """Hide padded encoder frames from the decoder's cross-attention (true-length input)."""
        if not self.pad_to_window and not bool((lengths == frames).all()):
            self.cross_mask = torch.arange(frames, device=lengths.device)[None, :] < lengths[:, None]
        try:
            yield
        finally:
            self.cross_mask = None


def load_seq2seq(source: str | None, config, tokenizer_source: str | None, seed: int, encoder_input: str):
    """WhisperForConditionalGeneration from a directory / hub id, or a random config (tests; its
    tokenizer and generation config then come from `tokenizer_source`)."""
    from transformers import (
        GenerationConfig,
        WhisperForConditionalGeneration,
        WhisperTokenizer,
    )

    where = source or tokenizer_source
    if where is None:
        raise HloraError("a seq2seq model on a random Whisper config needs a tokenizer directory (backbone tokenizer)")
    if source is not None:
        generator = WhisperForConditionalGeneration.from_pretrained(source, attn_implementation="sdpa")
    else:
        with seeded(seed):
            generator = WhisperForConditionalGeneration(config)
        generator.generation_config = GenerationConfig.from_pretrained(tokenizer_source)
    tokenizer = WhisperTokenizer.from_pretrained(where)
    if generator.config.vocab_size < len(tokenizer):
        raise HloraError(
            f"{where}: the tokenizer has {len(tokenizer)} tokens, the model's vocabulary {generator.config.vocab_size}"
        )
    fe = whisper_features(where, generator.config.num_mel_bins)
    return WhisperSeq2SeqBackbone(generator.eval(), fe, tokenizer, encoder_input)
