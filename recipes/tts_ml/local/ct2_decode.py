"""An `hlora export hf` Whisper through CTranslate2 (faster-whisper's engine), for stage 10.

ct2_decode.py EXPORT MANIFEST OUT.jsonl --quantization int8|float32 [--ct2-dir DIR]
    converts EXPORT with CTranslate2's transformers converter (into DIR, default EXPORT.ct2-Q) and
    decodes the utterances of MANIFEST greedily in the export's forced language, with hlora's token
    budget; writes a hypothesis file for `hlora score`. Needs `pip install ctranslate2` (not an
    hlora dependency: the stage skips this step without it).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

from hlora_cli.data.audio import load_audio
from hlora_cli.data.manifest import read_manifest
from hlora_cli.files import atomic_write
from hlora_cli.model.whisper_decoder import text_tokens, token_budget
from text_normalization import normalize

BATCH = 8


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("export", type=Path)
    ap.add_argument("manifest", type=Path)
    ap.add_argument("out", type=Path)
    ap.add_argument("--quantization", choices=["int8", "float32"], required=True)
    ap.add_argument("--ct2-dir", type=Path)
    args = ap.parse_args()

    import ctranslate2
    from ctranslate2.converters import TransformersConverter
    from transformers import GenerationConfig, WhisperProcessor

    lang = GenerationConfig.from_pretrained(args.export).language
    if not lang:
        raise SystemExit(f"{args.export}: its generation config forces no language (export it with --lang)")
    ct2_dir = args.ct2_dir or args.export.with_name(f"{args.export.name}.ct2-{args.quantization}")
    if not (ct2_dir / "model.bin").exists():
        TransformersConverter(str(args.export)).convert(str(ct2_dir), quantization=args.quantization, force=True)
    processor = WhisperProcessor.from_pretrained(args.export)
    model = ctranslate2.models.Whisper(str(ct2_dir), device="cpu", compute_type=args.quantization)
    tokens = ["<|startoftranscript|>", f"<|{lang}|>", "<|transcribe|>", "<|notimestamps|>"]
    prompt = processor.tokenizer.convert_tokens_to_ids(tokens)
    special = set(processor.tokenizer.all_special_ids)
    utts = list(read_manifest(args.manifest))
    rows = []
    for b in range(0, len(utts), BATCH):
        part = utts[b : b + BATCH]
        waves = [load_audio(u.audio, u.start, u.end) for u in part]
        feats = processor.feature_extractor(waves, sampling_rate=16000, return_tensors="np").input_features
        budgets = [token_budget(len(w) / 16000) for w in waves]
        found = model.generate(
            ctranslate2.StorageView.from_array(np.ascontiguousarray(feats)),
            [prompt] * len(part),
            beam_size=1,
            max_length=len(prompt) + max(budgets),  # the batch's longest; each is cut to its own below
        )
        for u, r, own in zip(part, found, budgets, strict=True):
            text = processor.tokenizer.decode(text_tokens(r.sequences_ids[0], special, own)).strip()
            rows.append({"id": u.id, "lang": lang, "lang_probs": {lang: 1.0}, "text": normalize(text, lang)})
    body = "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows)
    atomic_write(args.out, lambda p: p.write_text(body, encoding="utf-8"))
    print(f"{len(rows)} utterances -> {args.out} (CTranslate2 {args.quantization}, language {lang})")


if __name__ == "__main__":
    main()
