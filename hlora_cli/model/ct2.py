"""CTranslate2 Whisper (the faster-whisper format: model.bin, config.json, tokenizer.json) to an HF
transformers Whisper directory that loads offline with `from_pretrained` and transcribes with
`generate()`.

model.bin (format version 6): u32 version, spec name, u32 spec revision, u32 variable count, then
per variable: name, u8 rank, u32 dims, u8 dtype, u32 byte count, data; then u32 alias count and
(alias, target) name pairs. Strings are a u16 byte length then UTF-8 bytes (NUL-terminated).
Self-attention q/k/v are one fused matrix; cross-attention k/v likewise; int8 weights carry a
per-row `weight_scale`.
"""

from __future__ import annotations

import json
import os
import re
import struct
from pathlib import Path

import numpy as np
import torch

from hlora_cli.errors import HloraError

_DTYPES = {0: np.float32, 1: np.int8, 2: np.int16, 3: np.int32, 4: np.float16, 5: "bfloat16"}


class _Reader:
    def __init__(self, data: memoryview, path: Path) -> None:
        self.data, self.pos, self.path = data, 0, path

    def take(self, fmt: str) -> tuple:
        size = struct.calcsize(fmt)
        if self.pos + size > len(self.data):
            raise HloraError(f"{self.path}: truncated CTranslate2 model (at byte {self.pos})")
        values = struct.unpack_from(fmt, self.data, self.pos)
        self.pos += size
        return values

    def string(self) -> str:
        (n,) = self.take("<H")
        raw = bytes(self.data[self.pos : self.pos + n])
        self.pos += n
        return raw.rstrip(b"\0").decode("utf-8")


def read_ct2(path: Path) -> dict[str, np.ndarray]:
    """Every variable of a CTranslate2 model.bin as float32 (int8 dequantized), aliases resolved. A
    file cut short or crafted (sizes past its end, shapes that do not fit, an alias to nothing) is
    one error naming it."""
    try:
        data = memoryview(np.fromfile(path, dtype=np.uint8))
    except FileNotFoundError as e:
        raise HloraError(f"{path}: not found; a CTranslate2 model directory holds model.bin") from e
    try:
        return _parse_ct2(data, path)
    except (ValueError, KeyError, IndexError, TypeError, UnicodeDecodeError, struct.error, MemoryError) as e:
        raise HloraError(f"{path}: not a readable CTranslate2 model.bin (cut short or corrupt: {e})") from e


def _parse_ct2(data: memoryview, path: Path) -> dict[str, np.ndarray]:
    r = _Reader(data, path)
    (version,) = r.take("<I")
    if version != 6:
        raise HloraError(f"{path}: CTranslate2 model.bin format version {version}; only version 6 is supported")
    r.string()
    r.take("<I")
    (count,) = r.take("<I")
    raw: dict[str, np.ndarray] = {}
    for _ in range(count):
        name = r.string()
        (rank,) = r.take("<B")
        shape = r.take("<" + "I" * rank) if rank else ()
        dtype_id, nbytes = r.take("<BI")
        if dtype_id not in _DTYPES:
            raise HloraError(f"{path}: variable {name} has unknown dtype id {dtype_id}")
        buf = np.frombuffer(data, dtype=np.uint8, count=nbytes, offset=r.pos)
        r.pos += nbytes
        if _DTYPES[dtype_id] == "bfloat16":  # the high half of a float32
            arr = (buf.view(np.uint16).astype(np.uint32) << 16).view(np.float32)
        else:
            arr = buf.view(_DTYPES[dtype_id])
        raw[name] = arr.reshape(shape)
    if r.pos < len(data):
        (n_alias,) = r.take("<I")
        for _ in range(n_alias):
            alias, target = r.string(), r.string()
            raw[alias] = raw[target]
    out = {}
    for name, arr in raw.items():
        if name.endswith("weight_scale"):
            continue
        scale = raw.get(name + "_scale")
        if arr.dtype == np.int8 and scale is not None:
            arr = arr.astype(np.float32) / scale.reshape(-1, *([1] * (arr.ndim - 1)))
        out[name] = arr.astype(np.float32) if arr.dtype != np.float32 else arr
    return out


def _layer_count(v: dict[str, np.ndarray], side: str, path: Path) -> int:
    idx = [int(m.group(1)) for k in v if (m := re.match(rf"{side}/layer_(\d+)/", k))]
    if not idx:
        raise HloraError(f"{path}: no {side} layers in this CTranslate2 model: is it a Whisper model?")
    return max(idx) + 1


def _state_dict(v: dict[str, np.ndarray], enc_layers: int, dec_layers: int) -> dict[str, torch.Tensor]:
    """HF parameter names -> tensors."""
    sd: dict[str, torch.Tensor] = {}

    def get(name: str) -> torch.Tensor:
        if name not in v:
            raise HloraError(f"CTranslate2 model lacks variable {name}: not a Whisper model of the expected layout")
        return torch.from_numpy(np.ascontiguousarray(v[name]))

    def linear(hf: str, ct: str, bias: bool = True) -> None:
        sd[f"{hf}.weight"] = get(f"{ct}/weight")
        if bias:
            sd[f"{hf}.bias"] = get(f"{ct}/bias")

    def fused(hf: str, ct: str, names: list[str]) -> None:
        for name, w, b in zip(
            names, get(f"{ct}/weight").chunk(len(names)), get(f"{ct}/bias").chunk(len(names)), strict=True
        ):
            sd[f"{hf}.{name}.weight"] = w.clone()
            if name != "k_proj":  # Whisper's key projections have no bias (CTranslate2 stores zeros)
                sd[f"{hf}.{name}.bias"] = b.clone()

    def norm(hf: str, ct: str) -> None:
        sd[f"{hf}.weight"], sd[f"{hf}.bias"] = get(f"{ct}/gamma"), get(f"{ct}/beta")

    def block(hf: str, ct: str, decoder: bool) -> None:
        fused(f"{hf}.self_attn", f"{ct}/self_attention/linear_0", ["q_proj", "k_proj", "v_proj"])
        linear(f"{hf}.self_attn.out_proj", f"{ct}/self_attention/linear_1")
        norm(f"{hf}.self_attn_layer_norm", f"{ct}/self_attention/layer_norm")
        if decoder:
            linear(f"{hf}.encoder_attn.q_proj", f"{ct}/attention/linear_0")
            fused(f"{hf}.encoder_attn", f"{ct}/attention/linear_1", ["k_proj", "v_proj"])
            linear(f"{hf}.encoder_attn.out_proj", f"{ct}/attention/linear_2")
            norm(f"{hf}.encoder_attn_layer_norm", f"{ct}/attention/layer_norm")
        linear(f"{hf}.fc1", f"{ct}/ffn/linear_0")
        linear(f"{hf}.fc2", f"{ct}/ffn/linear_1")
        norm(f"{hf}.final_layer_norm", f"{ct}/ffn/layer_norm")

    for conv in ("conv1", "conv2"):
        linear(f"model.encoder.{conv}", f"encoder/{conv}")
    sd["model.encoder.embed_positions.weight"] = get("encoder/position_encodings/encodings")
    for i in range(enc_layers):
        block(f"model.encoder.layers.{i}", f"encoder/layer_{i}", decoder=False)
    norm("model.encoder.layer_norm", "encoder/layer_norm")
    sd["model.decoder.embed_tokens.weight"] = get("decoder/embeddings/weight")
    sd["model.decoder.embed_positions.weight"] = get("decoder/position_encodings/encodings")
    for i in range(dec_layers):
        block(f"model.decoder.layers.{i}", f"decoder/layer_{i}", decoder=True)
    norm("model.decoder.layer_norm", "decoder/layer_norm")
    return sd


def import_ct2(src: str | Path, dst: str | Path, overwrite: bool = False) -> Path:
    """Write an HF Whisper directory at `dst` (model, tokenizer, feature extractor, generation config).
    A non-empty `dst` is refused unless `overwrite`; then only the files we write are replaced."""
    from transformers import (
        GenerationConfig,
        WhisperConfig,
        WhisperFeatureExtractor,
        WhisperForConditionalGeneration,
        WhisperTokenizerFast,
    )

    src, dst = Path(src), Path(dst)
    if dst.exists() and not dst.is_dir():
        raise HloraError(f"{dst}: is a file; give a directory for the HF model")
    if dst.is_dir() and any(dst.iterdir()) and not overwrite:
        raise HloraError(f"{dst}: not empty; pass --overwrite to replace the model files in it (others are kept)")
    for name in ("model.bin", "config.json", "tokenizer.json"):
        if not (src / name).exists():
            raise HloraError(
                f"{src / name}: missing; a CTranslate2 Whisper directory has model.bin, config.json, tokenizer.json"
            )
    from hlora_cli.files import check_apart

    check_apart(dst, [src], "HF model directory")  # the conversion would rewrite its own input
    v = read_ct2(src / "model.bin")
    try:
        ct2_cfg = json.loads((src / "config.json").read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise HloraError(f"{src / 'config.json'}: not a JSON file ({e})") from None
    enc, dec = _layer_count(v, "encoder", src / "model.bin"), _layer_count(v, "decoder", src / "model.bin")
    conv1 = v["encoder/conv1/weight"]
    cfg = WhisperConfig(
        vocab_size=v["decoder/embeddings/weight"].shape[0],
        num_mel_bins=conv1.shape[1],
        d_model=conv1.shape[0],
        encoder_layers=enc,
        decoder_layers=dec,
        encoder_attention_heads=int(v["encoder/num_heads"].reshape(-1)[0]),
        decoder_attention_heads=int(v["decoder/num_heads"].reshape(-1)[0]),
        encoder_ffn_dim=v["encoder/layer_0/ffn/linear_0/weight"].shape[0],
        decoder_ffn_dim=v["decoder/layer_0/ffn/linear_0/weight"].shape[0],
        max_source_positions=v["encoder/position_encodings/encodings"].shape[0],
        max_target_positions=v["decoder/position_encodings/encodings"].shape[0],
    )
    model = WhisperForConditionalGeneration(cfg)
    missing, unexpected = model.load_state_dict(_state_dict(v, enc, dec), strict=False)
    if unexpected or set(missing) - {"proj_out.weight"}:  # the output projection is tied to the embeddings
        raise HloraError(f"{src}: weights do not fit Whisper (missing {missing[:3]}, unexpected {unexpected[:3]})")
    model.tie_weights()
    tok = WhisperTokenizerFast(tokenizer_file=str(src / "tokenizer.json"))
    special = tok.convert_tokens_to_ids
    model.generation_config = GenerationConfig(
        decoder_start_token_id=special("<|startoftranscript|>"),
        eos_token_id=special("<|endoftext|>"),
        pad_token_id=special("<|endoftext|>"),
        bos_token_id=special("<|endoftext|>"),
        no_timestamps_token_id=special("<|notimestamps|>"),
        prev_sot_token_id=special("<|startofprev|>"),
        lang_to_id={tok.convert_ids_to_tokens(i): i for i in ct2_cfg.get("lang_ids", [])},
        task_to_id={"transcribe": special("<|transcribe|>"), "translate": special("<|translate|>")},
        is_multilingual=bool(ct2_cfg.get("lang_ids")),
        suppress_tokens=ct2_cfg.get("suppress_ids", []),
        begin_suppress_tokens=ct2_cfg.get("suppress_ids_begin", []),
        alignment_heads=ct2_cfg.get("alignment_heads"),
        max_length=cfg.max_target_positions,
    )
    import shutil
    import tempfile

    dst.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{dst.name}.", dir=dst.parent))
    try:
        model.save_pretrained(tmp)
        tok.save_pretrained(tmp)
        WhisperFeatureExtractor(feature_size=cfg.num_mel_bins).save_pretrained(tmp)
        dst.mkdir(exist_ok=True)
        for f in tmp.iterdir():  # our files only: whatever else the user keeps in dst stays
            os.replace(f, dst / f.name)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)  # ours alone: a fresh temporary directory
    return dst
