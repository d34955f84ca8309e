"""A randomly initialised HuBERT with mHuBERT-147's layer count (12) but tiny widths, saved as a
Hugging Face directory (config.json, model.safetensors, preprocessor_config.json): the recipe's
smoke run trains every system on it exactly as on the real backbone.

    tiny_hubert.py OUT_DIR [--layers 12] [--seed 0]
"""

from __future__ import annotations

import argparse
from pathlib import Path

import torch
from transformers import HubertConfig, HubertModel, Wav2Vec2FeatureExtractor
from transformers.utils import logging


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("out", type=Path)
    ap.add_argument("--layers", type=int, default=12)
    ap.add_argument("--seed", type=int, default=0)
    a = ap.parse_args()
    torch.manual_seed(a.seed)
    logging.disable_progress_bar()  # a log file, not a terminal
    config = HubertConfig(
        hidden_size=32,
        num_hidden_layers=a.layers,
        num_attention_heads=2,
        intermediate_size=64,
        conv_dim=[32, 32, 32],
        conv_kernel=[10, 8, 4],
        conv_stride=[5, 8, 8],  # 320 samples a frame, 50 frames a second, as HuBERT-base
        num_conv_pos_embeddings=16,
        num_conv_pos_embedding_groups=4,
    )
    HubertModel(config).save_pretrained(a.out)
    Wav2Vec2FeatureExtractor(do_normalize=True, return_attention_mask=True).save_pretrained(a.out)
    print(f"{a.out}: random HuBERT, {a.layers} layers, width 32")


if __name__ == "__main__":
    main()
