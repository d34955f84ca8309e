"""`hlora train`'s flags become TrainConfig values by name: lists split, codes checked, unset left out."""

import inspect

import pytest

from hlora_cli.cli.train import train
from hlora_cli.errors import HloraError
from hlora_cli.train.config import TrainConfig, flag_overrides, load_config


def test_every_train_flag_names_a_setting():
    flags = set(inspect.signature(train).parameters) - {"out", "config", "resume", "overwrite"}
    assert flags <= {f for f in TrainConfig.__dataclass_fields__}
    assert {"train", "k", "lr", "lora_targets", "languages", "batching"} <= flags


def test_flags_become_values():
    got = flag_overrides({"languages": "EN, de", "lora_targets": "q,v", "lr": 0.01, "k": None, "train": "t.jsonl"})
    assert got == {"languages": ["en", "de"], "lora_targets": ["q", "v"], "lr": 0.01, "train": "t.jsonl"}
    cfg = load_config(None, {**got, "vocab": "v.json", "backbone": "b"})
    assert (cfg.languages, cfg.lora_targets, cfg.lr, cfg.k) == (["en", "de"], ["q", "v"], 0.01, None)
    with pytest.raises(TypeError, match="hlora train flags without a TrainConfig field: lora_ranks"):
        flag_overrides({"lora_ranks": 4})
    with pytest.raises(HloraError, match="is not a language code"):
        flag_overrides({"languages": "en,english"})
