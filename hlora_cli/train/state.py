"""The run's resumable state: RUN_DIR/checkpoint.pt (trainable weights, optimizer, scheduler,
sampler position, RNG states, step, counters), written atomically; and model directories
(RUN_DIR/best, RUN_DIR/last) swapped in whole."""

from __future__ import annotations

import json
import os
import pickle
import random
import re
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import torch

from hlora_cli.errors import HloraError
from hlora_cli.files import atomic_write, check_apart
from hlora_cli.model import HloraModel, save_model
from hlora_cli.model.checkpoint import current_names

CHECKPOINT = "checkpoint.pt"
METRICS = "metrics.jsonl"


def rng_state() -> dict[str, Any]:
    """Every RNG's state as tensors, numbers and tuples only, so the checkpoint loads with
    torch.load(weights_only=True)."""
    name, keys, pos, has_gauss, cached = np.random.get_state(legacy=True)
    numpy_state = (name, torch.from_numpy(keys.astype(np.int64)), int(pos), int(has_gauss), float(cached))
    state = {"python": random.getstate(), "numpy": numpy_state, "torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict[str, Any]) -> None:
    random.setstate(state["python"])
    name, keys, pos, has_gauss, cached = state["numpy"]
    keys = keys.numpy() if isinstance(keys, torch.Tensor) else keys
    np.random.set_state((name, np.asarray(keys, dtype=np.uint32), pos, has_gauss, cached))
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def save_checkpoint(run_dir: Path, state: dict[str, Any]) -> None:
    atomic_write(run_dir / CHECKPOINT, lambda p: torch.save(state, p))


def load_checkpoint(run_dir: Path) -> dict[str, Any]:
    """The run's state, unpickled with weights_only=True: tensors, numbers, strings and containers
    only, so a checkpoint from elsewhere cannot run code. (Checkpoints of earlier versions held
    numpy's RNG state as an array: those numpy types are allowed too.)"""
    path = run_dir / CHECKPOINT
    allowed = [np.ndarray, np.dtype, np.core.multiarray._reconstruct, type(np.dtype(np.uint32))]
    try:
        with torch.serialization.safe_globals(allowed):
            return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as e:
        found = re.search(r"GLOBAL (\S+)", str(e))
        what = f" ({found.group(1)})" if found else ""
        raise HloraError(
            f"{path}: refused: the checkpoint holds code{what}, not only tensors and numbers; "
            "resume only runs whose checkpoint you trust"
        ) from e
    except FileNotFoundError as e:
        raise HloraError(f"{path}: no checkpoint to resume from") from e
    except (EOFError, RuntimeError, OSError, ValueError) as e:
        raise HloraError(
            f"{path}: not a readable checkpoint (empty, cut short or corrupt: {e or type(e).__name__})"
        ) from e


def save_model_dir(model: HloraModel, target: Path) -> None:
    """Write a model directory beside `target`, then swap it in: a crash leaves either the old or
    the new one (or both, the old as TARGET.old), never a half-written one."""
    tmp, old = target.with_name(target.name + ".tmp"), target.with_name(target.name + ".old")
    shutil.rmtree(tmp, ignore_errors=True)
    save_model(model, tmp)
    if target.exists():
        shutil.rmtree(old, ignore_errors=True)
        os.replace(target, old)
    os.replace(tmp, target)
    shutil.rmtree(old, ignore_errors=True)


# What a run writes in RUN_DIR: --overwrite removes these and nothing else.
RUN_FILES = ("train.yaml", METRICS, CHECKPOINT, "best", "last", "tensorboard")
LOCK = ".lock"


def foreign_files(run_dir: Path) -> list[str]:
    """What a directory that holds no run (no train.yaml, no checkpoint) holds but our lock, sorted:
    even a `best/` or `metrics.jsonl` there is the user's, not ours to append to or replace."""
    return sorted(p.name for p in run_dir.iterdir() if p.name != LOCK)


def lock_run_dir(run_dir: Path) -> object:
    """An exclusive lock on RUN_DIR for as long as the returned object lives (the process's life):
    a second training into the same directory stops at once instead of interleaving its
    checkpoints and metrics with the first's. A POSIX record lock (lockf), not flock: it belongs to
    this process alone, so the data loader's forked workers, which inherit the descriptor, do not
    keep it after a kill."""
    import fcntl

    handle = open(run_dir / LOCK, "a+")  # noqa: SIM115  (held open: the lock lives with the handle)
    try:
        fcntl.lockf(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        handle.seek(0)
        holder = handle.read().strip()
        handle.close()
        raise HloraError(
            f"{run_dir}: another training is writing this run{f' (pid {holder})' if holder else ''}; "
            "wait for it to end or give another --out"
        ) from None
    handle.seek(0)
    handle.truncate()
    handle.write(str(os.getpid()))
    handle.flush()
    return handle


def remove_run_files(run_dir: Path) -> None:
    for name in RUN_FILES:
        path = run_dir / name
        if path.is_dir():
            shutil.rmtree(path)
        else:
            path.unlink(missing_ok=True)
    remove_partial_writes(run_dir)


def remove_partial_writes(run_dir: Path) -> None:
    """Leftovers of a write killed half-way (atomic_write's `.NAME.XXXX`, a model directory's
    `.tmp` / `.old`): ours by name, never complete files."""
    for name in (CHECKPOINT, METRICS, "train.yaml"):
        for tmp in run_dir.glob(f".{name}.*"):
            tmp.unlink(missing_ok=True)
    for name in ("best", "last"):
        shutil.rmtree(run_dir / f"{name}.tmp", ignore_errors=True)
        old = run_dir / f"{name}.old"
        if old.is_dir() and not (run_dir / name).exists():
            os.replace(old, run_dir / name)  # killed between the two renames: the old one is the model
        shutil.rmtree(old, ignore_errors=True)


# Settings that shape the model or its data: a resumed run must keep them.
MODEL_SETTINGS = (
    "backbone",
    "model_type",
    "k",
    "freeze_layers",
    "lora_rank",
    "lora_alpha",
    "lora_targets",
    "lid_head",
    "lid_pooling",
    "lid_hidden",
    "vocab",
    "languages",
    "train_routing",
    "experts",
    "l1",
    "backbone_mode",
    "encoder_input",
)


def check_run_dir(run_dir: Path, cfg, resume: bool, overwrite: bool) -> bool:
    """RUN_DIR checked before any work: a file, an input inside it, a run without --resume or
    --overwrite, or a user's folder of other files is refused. Returns whether an old run is to
    be replaced; nothing is removed here: --overwrite replaces it only once every input has been
    read and the model built (open_run_dir), so a bad option never costs the old run."""
    if run_dir.exists() and not run_dir.is_dir():
        raise HloraError(f"{run_dir}: is a file; --out names the run directory")
    # the run directory is replaced as a whole: it may hold, or lie in, no input
    inputs = [cfg.train, cfg.dev, cfg.vocab, cfg.backbone, cfg.init_from, *(cfg.experts or [])]
    check_apart(run_dir, inputs, "run directory")
    holds_run = (run_dir / "train.yaml").exists() or (run_dir / CHECKPOINT).exists()
    if resume:
        if not (run_dir / CHECKPOINT).exists():
            raise HloraError(f"{run_dir}: no {CHECKPOINT} to resume from")
    elif holds_run and not overwrite:
        raise HloraError(f"{run_dir} holds another run: pass --resume to continue it or --overwrite to replace it")
    elif not holds_run and run_dir.is_dir():
        foreign = foreign_files(run_dir)
        if foreign:  # the user's folder: never appended to, replaced or cleaned by us
            raise HloraError(
                f"{run_dir}: holds no hlora run but other files ({', '.join(foreign[:3])}); "
                "give a new or empty directory for the run"
            )
    return holds_run and not resume


def open_run_dir(run_dir: Path, replace: bool) -> object:
    """Make and lock RUN_DIR (one training at a time; the lock is returned), then clear what an old
    run (`replace`) or a killed write left: called after every check, so an error before leaves
    the directory as it was."""
    run_dir.mkdir(parents=True, exist_ok=True)
    lock = lock_run_dir(run_dir)
    if replace:
        remove_run_files(run_dir)  # what we wrote; other files in RUN_DIR stay
    remove_partial_writes(run_dir)
    return lock


def check_resume_settings(run_dir: Path, cfg) -> None:
    """Every setting that shapes the model or its data must be the run's: resuming with another
    backbone, type, k, rank or vocabulary would load adapters into the wrong model."""
    from hlora_cli.model.config import canonical_model_type
    from hlora_cli.train.config import load_config

    saved = load_config(run_dir / "train.yaml", {})
    saved.model_type = canonical_model_type(saved.model_type)  # a run saved as "baseline" is shared-lora
    for name in MODEL_SETTINGS:
        old, new = getattr(saved, name), getattr(cfg, name)
        if old != new:
            raise HloraError(
                f"{run_dir}: --resume with {name}={new!r}, but the run was trained with {old!r}: "
                "resume with the run's setting, or start a new run in another directory"
            )


def gather(trainer, obj: object) -> list:
    """`obj` of every rank, in rank order (one process: [obj])."""
    if not trainer.dist.enabled:
        return [obj]
    out: list = [None] * trainer.dist.world_size
    torch.distributed.all_gather_object(out, obj)
    return out


def checkpoint(trainer) -> None:
    """RUN_DIR/checkpoint.pt: what a resumed run needs to go on as the uninterrupted one would."""
    sampler = gather(trainer, trainer.batches.state_dict())
    rng = gather(trainer, rng_state())
    emission = gather(trainer, trainer.emission.state_dict() if trainer.emission is not None else [])
    if trainer.dist.is_main:
        state = {
            "step": trainer.step,
            "model": {n: t.cpu() for n, t in trainer.model.trainable_state_dict().items()},
            "optimizer": trainer.optimizer.state_dict(),
            "scheduler": trainer.scheduler.state_dict(),
            "sampler": sampler,
            "rng": rng,
            "emission": emission,
            "best": trainer.best,
            "evals_since_best": trainer.evals_since_best,
            "bad_in_a_row": trainer.bad_in_a_row,
            "bad_total": trainer.bad_total,
        }
        save_checkpoint(trainer.run_dir, state)


def restore(trainer) -> None:
    """The trainer as its checkpoint left it; metrics.jsonl loses what the killed run logged later."""
    run_dir, dist = trainer.run_dir, trainer.dist
    ckpt = load_checkpoint(run_dir)
    if len(ckpt["sampler"]) != dist.world_size:
        raise HloraError(f"{run_dir}: the run was saved by {len(ckpt['sampler'])} process(es); resume it with as many")
    with torch.no_grad():
        named = dict(trainer.model.named_parameters())
        for name, t in current_names(ckpt["model"]).items():  # a run saved before the readout resumes too
            named[name].copy_(t)
    trainer.optimizer.load_state_dict(ckpt["optimizer"])
    trainer.scheduler.load_state_dict(ckpt["scheduler"])
    trainer.batches.load_state_dict(ckpt["sampler"][dist.rank])
    set_rng_state(ckpt["rng"][dist.rank])
    if trainer.emission is not None and "emission" in ckpt:  # a checkpoint from before the watch has none
        trainer.emission.load_state_dict(ckpt["emission"][dist.rank])
    trainer.step, trainer.best, trainer.evals_since_best = ckpt["step"], ckpt["best"], ckpt["evals_since_best"]
    trainer.bad_in_a_row, trainer.bad_total = ckpt["bad_in_a_row"], ckpt["bad_total"]
    metrics = run_dir / METRICS
    if dist.is_main and metrics.exists():
        lines = metrics.read_text().splitlines()
        kept = [line for line in lines if json.loads(line).get("step", 0) <= trainer.step]
        atomic_write(metrics, lambda p: p.write_text("".join(x + "\n" for x in kept)))
