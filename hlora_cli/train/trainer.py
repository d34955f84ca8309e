"""The training loop: joint CTC + LID, gradient accumulation, clipping, warmup + decay, periodic
validation (loss, LID accuracy, CER per language), best/last model directories, and a checkpoint
that resumes to the exact step. Data-parallel under torchrun: each rank takes its share of the
batches, gradients are averaged, rank 0 alone writes."""

from __future__ import annotations

import math
import os
import random
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from hlora_cli.data.batching import DurationBatchSampler, Example, duration_batches
from hlora_cli.data.features import Features
from hlora_cli.data.langs import resolve_language
from hlora_cli.data.loader import Job, Loaded, Segment, default_workers, load_in_background, load_job
from hlora_cli.data.shards import ShardIndex, ShardStream, is_shard_dir
from hlora_cli.data.vocab import Vocab, norm_text
from hlora_cli.device import autocast, check_dtype, fit_threads, resolve_device, say_on_stderr
from hlora_cli.errors import HloraError
from hlora_cli.files import json_text
from hlora_cli.model import BackboneRef, HloraModel, LIDConfig, LoRAConfig, ModelConfig, build_model
from hlora_cli.model.backbone import detect_kind
from hlora_cli.model.compiled import CompiledForward, bucket
from hlora_cli.model.config import SHARED_HEAD_TYPES, layer_plan
from hlora_cli.model.experts import (
    init_student,
    load_expert_weights,
    load_experts,
    load_teacher,
    mole_config,
    student_config,
    warm_start_mole,
)
from hlora_cli.model.precision import keep_frozen_in
from hlora_cli.model.readout import Objective
from hlora_cli.score.metrics import char_errors
from hlora_cli.train import state as run_state
from hlora_cli.train.batches import TrainBatches
from hlora_cli.train.config import TrainConfig
from hlora_cli.train.data import (
    ExampleMaker,
    Examples,
    StreamedExamples,
    load_examples,
    no_head,
    shard_examples,
)
from hlora_cli.train.distributed import Dist
from hlora_cli.train.plateau import EmissionWatch
from hlora_cli.train.targets import target_tokens
from text_normalization import normalize
from text_normalization.rules import strip_language_prefix

Callback = Callable[[dict], None]


def model_config(cfg: TrainConfig, vocab: Vocab, languages: list[str]) -> ModelConfig:
    kind = detect_kind(cfg.backbone)
    lora = LoRAConfig(cfg.lora_rank, cfg.lora_alpha, cfg.lora_dropout, list(cfg.lora_targets))
    shared = cfg.model_type in SHARED_HEAD_TYPES
    vocabs, shared_vocab = vocab.head_inventories(languages, shared)  # none for Whisper's own tokens
    return ModelConfig(
        cfg.model_type,
        BackboneRef(kind, source=cfg.backbone),
        languages,
        vocabs=vocabs,
        shared_vocab=shared_vocab,
        k=cfg.k if cfg.model_type == "hlora" else None,
        lora=lora,
        lid=LIDConfig(cfg.lid_head, cfg.lid_pooling, cfg.lid_hidden),
        freeze_layers=cfg.freeze_layers,
        bpe_models=vocab.bpe_models_for(languages, shared),
        backbone_mode=cfg.backbone_mode,
        encoder_input=cfg.encoder_input,
    )


def param_groups(model: HloraModel, trainable: list[torch.nn.Parameter], cfg: TrainConfig) -> list[dict]:
    """LoRA at `lr`; the heads at `head_lr`. The heads start from random weights and need large
    steps, while LoRA steps that large move the frozen encoder's features faster than a head on
    top of them can follow (on 7 languages, lr 5e-3 for everything kept the LID head at chance)."""
    head_ids = {id(p) for head in (model.readout, model.lid_head) if head is not None for p in head.parameters()}
    groups = [
        {"params": [p for p in trainable if id(p) not in head_ids], "lr": cfg.lr},
        {"params": [p for p in trainable if id(p) in head_ids], "lr": cfg.head_lr or cfg.lr},
    ]
    return [g for g in groups if g["params"]]


def lr_lambda(cfg: TrainConfig, total: int) -> Callable[[int], float]:
    def f(step: int) -> float:
        if step < cfg.warmup_steps:
            return (step + 1) / cfg.warmup_steps
        if cfg.schedule == "constant":
            return 1.0
        progress = min(1.0, (step - cfg.warmup_steps) / max(1, total - cfg.warmup_steps))
        return 1.0 - progress if cfg.schedule == "linear" else 0.5 * (1 + math.cos(math.pi * progress))

    return f


# A training step's sums over its micro-batches (and ranks): utterance-weighted losses, LID hits,
# utterances, audio seconds.
STEP_SUMS = ("loss", "asr", "lid", "lid_correct", "utts", "audio_s", "kd_cos", "kd_js")
# An evaluation's sums per language (the columns of its array): character errors, reference
# characters, utterances, LID hits.
EVAL_SUMS = ("char_errors", "ref_chars", "utts", "lid_correct")


@dataclass
class TrainSummary:
    steps: int
    best: float | None
    metric: str
    seconds: float
    trainable: int
    frozen: int
    skipped: dict
    unknown_chars: int
    bad_batches: int
    last_eval: dict
    unreadable: dict  # utterance id -> why its audio was left out (names the file)
    plateau: dict  # language -> tokens its CTC head emits per reference token, where still on the blank plateau


class Trainer:
    def __init__(self, cfg: TrainConfig, run_dir: Path, resume: bool = False, overwrite: bool = False) -> None:
        cfg.check()
        self.cfg, self.run_dir, self.resume = cfg, Path(run_dir), resume
        self.device = resolve_device(cfg.device)
        self.dist = Dist.from_env(self.device.type == "cuda")
        if self.device.type == "cuda":
            self.device = torch.device("cuda", self.dist.local_rank) if self.dist.enabled else self.device
            torch.cuda.set_device(self.device)
            torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = True
        self._replace_run = run_state.check_run_dir(self.run_dir, cfg, resume, overwrite)
        self.dist.barrier()  # every rank has looked before the main one changes anything
        if resume:
            run_state.check_resume_settings(self.run_dir, cfg)
        # autocast's dtype, once: "auto" is bf16 where the device computes it natively (unless
        # bf16: false), and says so; check_dtype warns where the CPU only emulates a bf16 asked for
        name = "fp32" if cfg.dtype == "auto" and not cfg.bf16 else cfg.dtype
        # said when training starts: an error found while setting up stays the only line printed
        self._dtype_note: list[str] = []
        self.compute_dtype = check_dtype(name, self.device, say=self._dtype_note.append)
        if cfg.deterministic:
            # CUDA has no deterministic backward for CTC: there it stays the one op that may differ
            # run to run (a warning says so) instead of refusing to train. cuBLAS needs a fixed workspace.
            if self.device.type == "cuda":
                os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
            torch.use_deterministic_algorithms(True, warn_only=self.device.type == "cuda")
        torch.manual_seed(cfg.seed)
        random.seed(cfg.seed)
        np.random.seed(cfg.seed)

        self.experts = load_experts(cfg.experts) if cfg.experts else None
        if cfg.model_type == "mole":  # --l1 against the encoder's depth before any data is read
            layer_plan("mole", len(self.experts[0].config.layout.routed), None, l1=cfg.l1)
        self.vocab, languages = target_tokens(
            cfg.backbone_mode, cfg.vocab, cfg.backbone, cfg.train, cfg.languages, self.experts
        )
        unknown = [lang for lang in languages if lang not in self.vocab.languages]
        if unknown:
            raise HloraError(f"{cfg.vocab}: no token inventory for language(s) {', '.join(unknown)}")
        shared = cfg.model_type in SHARED_HEAD_TYPES
        if cfg.model_type == "ctc" and not self.vocab.has_prefix_tokens(languages):
            raise HloraError(
                f"{cfg.vocab}: a ctc model reads the language from <xx> prefix tokens, which the shared "
                "inventory lacks: make the vocab with `hlora prepare vocab --prefix-tokens`"
            )
        soft = cfg.train_routing == "soft"
        own = cfg.model_type == "expert"  # an expert reads its own language's rows of a manifest
        self.streaming = is_shard_dir(cfg.train)
        if self.streaming:
            self.train_data = StreamedExamples([])
        else:
            self.train_data = load_examples(cfg.train, self.vocab, languages, shared, cfg.max_duration, soft, own)
        self.dev_data = (
            load_examples(cfg.dev, self.vocab, languages, shared, cfg.max_duration, only_languages=own)
            if cfg.dev
            else None
        )
        self.model: HloraModel = self._build_model(languages).to(self.device)
        self.teacher = None
        if cfg.model_type == "student" and cfg.kd != "none":
            self.teacher = load_teacher(self.experts, self.device)
        # bf16: frozen weights cast once, not by autocast on every call (the same numbers; this
        # model then runs under autocast only, as every forward here does: model/precision.py)
        for m in [self.model] if self.teacher is None else [self.model, self.teacher]:
            keep_frozen_in(m.backbone, self.compute_dtype)
        self.model.gradient_checkpointing = cfg.gradient_checkpointing
        # what the training step calls: the model, or its forward compiled (model/compiled.py)
        self.forward_model = CompiledForward(self.model, self.device, for_training=True) if cfg.compile else self.model
        lid_weight = cfg.lid_weight if self.model.lid_head is not None else 0.0
        self.objective = Objective(lid_weight, cfg.kd, cfg.kd_cos_weight, cfg.kd_js_weight)
        self.params = [p for p in self.model.parameters() if p.requires_grad]
        if self.streaming:
            maker = ExampleMaker(self.vocab, languages, shared, cfg.max_duration, soft)
            self.sampler = self._stream(maker, only_languages=own)
            self.total_steps = cfg.max_steps
        else:
            self.sampler = DurationBatchSampler(
                self.train_data.durations,
                cfg.batch_seconds,
                cfg.seed,
                rank=self.dist.rank,
                world_size=self.dist.world_size,
                batching=cfg.batching,
                groups=[e.lang_index for e in self.train_data.examples],
            )
            self.total_steps = cfg.max_steps or math.ceil(self.sampler.batches_in(cfg.epochs) / cfg.grad_accum)
        self.workers = default_workers() if cfg.num_workers is None else cfg.num_workers
        fit_threads(self.workers, self.dist.world_size if self.device.type == "cpu" else 1)
        self.pin_memory = self.device.type == "cuda"
        self.batches = TrainBatches(
            self.sampler, self._loadable(self.train_data), self.model.backbone.frontend, self.workers, self.pin_memory
        )
        # fused on a GPU: one kernel for every parameter's update, not a dozen per parameter group
        self.optimizer = torch.optim.AdamW(
            param_groups(self.model, self.params, cfg), weight_decay=cfg.weight_decay, fused=self.device.type == "cuda"
        )
        self.scheduler = torch.optim.lr_scheduler.LambdaLR(self.optimizer, lr_lambda(cfg, self.total_steps))
        self.step, self.best, self.evals_since_best, self.bad_in_a_row, self.bad_total = 0, None, 0, 0, 0
        self.last_eval: dict = {}
        self.unreadable: dict[str, str] = {}  # utterance id -> why its audio was left out
        # CTC's blank plateau, per language (where the readout counts emitted tokens)
        self.emission = EmissionWatch(languages) if self.model.readout.counts_emissions else None
        if self.dist.is_main:
            self._lock = run_state.open_run_dir(self.run_dir, self._replace_run)
        self.dist.barrier()
        if resume:
            try:
                self._restore()
            except BaseException:
                self.release()
                raise
        if self.dist.is_main:  # on resume too: the settings it goes on with (e.g. more steps)
            cfg.save(self.run_dir / "train.yaml")
        self.tensorboard = self._tensorboard()
        if self.step < cfg.head_tie_steps:  # CTC heads only (train/config.py)
            self.model.readout.tie_heads(self.model.config)

    def _stream(self, maker: ExampleMaker, only_languages: bool) -> ShardStream:
        """--train DIR/ of shards: streamed (data/shards.py), its languages checked as a manifest's."""
        cfg = self.cfg
        index = ShardIndex.load(cfg.train)
        if cfg.max_steps is None:
            raise HloraError(
                f"{cfg.train}: shards are streamed, so an epoch's batches are not known ahead: give --max-steps "
                f"(the shards hold {index.utterances} utterances, {index.seconds / 3600:.2f} h; an epoch is about "
                f"{math.ceil(index.seconds / cfg.batch_seconds / self.dist.world_size)} batches of --batch-seconds)"
            )
        missing = [x for x in index.languages if resolve_language(x, maker.languages) is None]
        if missing and not only_languages:
            raise no_head(cfg.train, ", ".join(missing), maker.languages)
        make = shard_examples(maker, self.train_data)
        return ShardStream(index, make, cfg.batch_seconds, cfg.seed, self.dist.rank, self.dist.world_size)

    def _build_model(self, languages: list[str]) -> HloraModel:
        """A fresh model; built from the experts for mole (their weights, warm-started fusion and
        router with --init-from) and student (starting from their average)."""
        cfg = self.cfg
        lid = LIDConfig(cfg.lid_head, cfg.lid_pooling, cfg.lid_hidden)
        if cfg.model_type == "mole":
            model = build_model(mole_config(self.experts, cfg.l1, lid))
            load_expert_weights(model, self.experts)
            if cfg.init_from and not self.resume:
                warm_start_mole(model, cfg.init_from)
            return model
        if cfg.model_type == "student":
            model = build_model(student_config(self.experts, cfg.lora_rank, cfg.lora_alpha, cfg.lora_dropout, lid))
            init_student(model, self.experts)
            return model
        return build_model(model_config(cfg, self.vocab, languages))

    # --- run directory -------------------------------------------------------------------
    def _restore(self) -> None:
        run_state.restore(self)

    def _checkpoint(self) -> None:
        run_state.checkpoint(self)

    def _tensorboard(self):
        """RUN_DIR/tensorboard: the metrics.jsonl records as TensorBoard scalars (with --tensorboard,
        or by default where the tensorboard package is installed)."""
        if not self.dist.is_main or self.cfg.tensorboard is False:
            return None
        try:
            from torch.utils.tensorboard import SummaryWriter
        except ImportError:
            return None  # --tensorboard without the package was refused by the config check
        # On resume, drop the events a killed run logged after its checkpoint.
        return SummaryWriter(str(self.run_dir / "tensorboard"), purge_step=self.step + 1 if self.resume else None)

    def _log(self, record: dict) -> None:
        if not self.dist.is_main:
            return
        with open(self.run_dir / run_state.METRICS, "a", encoding="utf-8") as f:
            f.write(json_text(record) + "\n")
        if self.tensorboard is not None:
            for key, value in record.items():
                values = value if isinstance(value, dict) else {"": value}  # per language: loss/en
                for sub, x in values.items():
                    if isinstance(x, (int, float)) and key != "step":
                        self.tensorboard.add_scalar(f"{key}/{sub}" if sub else key, x, record["step"])

    # --- steps ---------------------------------------------------------------------------
    def _autocast(self):
        return autocast(self.device, self.compute_dtype)

    def _loadable(self, data: Examples) -> Callable[[list], tuple[list, list[Segment]]]:
        """A batch's key (indices into `data`; streamed, its examples and their audio) less what is
        known to be unreadable, and the segments to read."""

        def segments(idx: list[int]) -> tuple[list[int], list[Segment]]:
            keep = [i for i in idx if data.examples[i].utt.id not in self.unreadable]
            utts = [data.examples[i].utt for i in keep]
            return keep, [Segment(u.audio, u.start, u.end) for u in utts]

        def streamed(items: list) -> tuple[list[Example], list[Segment]]:
            keep = [(e, flac) for e, flac in items if e.utt.id not in self.unreadable]
            return [e for e, _ in keep], [Segment(e.utt.audio, data=flac) for e, flac in keep]

        return streamed if isinstance(data, StreamedExamples) else segments

    def _received(self, data: Examples, loaded: Loaded) -> tuple[list[Example], Features | None]:
        """A loaded batch's examples and features. Audio that did not load (missing, corrupt, NaN
        or Inf samples) is left out and remembered by id, with the reason naming the file."""
        batch = data.batch(loaded.key)
        for pos, reason in loaded.failed.items():
            utt_id = batch[pos].utt.id
            if utt_id not in self.unreadable:  # a batch prefetched before it was known comes back again
                self.unreadable[utt_id] = reason
                data.skipped["unreadable audio"] += 1
        return [batch[p] for p in loaded.kept], loaded.feats

    def load_batch(self, data: Examples, idx: list[int]) -> tuple[list[Example], Features | None]:
        """The examples `idx` of `data` and their features, read in this process."""
        return self._received(data, load_job(Job(*self._loadable(data)(idx)), self.model.backbone.frontend))

    def _forward(self, batch: list[Example], feats: Features, routing_mode: str):
        """Forward and loss of one batch, as the model's readout computes them (model/readout.py)."""
        feats = feats.to(self.device, non_blocking=self.pin_memory)
        if self.forward_model is not self.model:  # padded here, so a teacher reads the frames the student does
            feats = bucket(feats, pad_rows=False)[0]
        model, readout = self.forward_model, self.model.readout
        return readout.loss(model, feats, batch, routing_mode, self.objective, self.teacher, self._autocast)

    def _train_routing(self, micro: int) -> str:
        cfg = self.cfg
        if cfg.model_type != "hlora" or cfg.train_routing != "oracle":
            return cfg.train_routing  # the config check allows soft and predicted for hlora only
        coin = random.Random(cfg.seed * 1_000_003 + self.step * 101 + micro).random()
        return "predicted" if coin < cfg.predicted_route_prob else "oracle"

    def train_step(self) -> dict:
        """One optimizer step over grad_accum batches; a non-finite loss on any rank skips it."""
        cfg = self.cfg
        self.model.train()
        sums = dict.fromkeys(STEP_SUMS, 0.0)
        bad = 0.0
        # The step's gradient is that of the mean loss over all its utterances, on every rank and
        # in every micro-batch, however the duration buckets split them: each micro-batch's mean
        # loss is weighted by its share of the step's utterances (times the world size, which
        # average_gradients divides by again).
        wait = self.batches.wait_seconds
        micro_batches = [self._received(self.train_data, self.batches.next()) for _ in range(cfg.grad_accum)]
        wait = self.batches.wait_seconds - wait
        step_utts = self.dist.sum([float(sum(len(batch) for batch, _ in micro_batches))])[0]
        compiled = self.forward_model is not self.model
        read: set[int] = set()  # compiled: the heads that read an utterance (routed; all in soft routing)
        for micro, (batch, feats) in enumerate(micro_batches):
            if not batch:
                continue
            out, parts = self._forward(batch, feats, self._train_routing(micro))
            if not torch.isfinite(parts.total):
                bad = 1.0
                break
            (parts.total * len(batch) * self.dist.world_size / step_utts).backward()
            routed = out.lang_ids.tolist() if compiled or self.emission is not None else []
            if compiled:
                read.update(range(len(self.model.languages)) if out.head_ctc_logprobs is not None else routed)
            n = len(batch)
            if self.emission is not None:
                refs = [len(e.targets) for e in batch]
                self.emission.add(self.model.readout.emitted(out), routed, refs)
            sums["loss"] += parts.total.item() * n
            sums["asr"] += parts.asr.item() * n
            sums["lid"] += parts.lid.item() * n
            sums["lid_correct"] += parts.lid_correct
            sums["utts"] += n
            sums["audio_s"] += sum(e.utt.duration for e in batch)
            if parts.kd_js is not None:
                sums["kd_cos"] += parts.kd_cos.item() * n
                sums["kd_js"] += parts.kd_js.item() * n
        # one all-reduce for the step's sums over ranks, and whether any rank met a non-finite loss
        reduced = self.dist.sum([*sums.values(), bad])
        totals, bad = dict(zip(STEP_SUMS, reduced[:-1], strict=True)), reduced[-1]
        if bad > 0:
            self.optimizer.zero_grad(set_to_none=True)
            self.bad_in_a_row += 1
            self.bad_total += 1
            if self.bad_in_a_row >= cfg.max_bad_batches:
                raise HloraError(
                    f"{self.bad_in_a_row} batches in a row had a non-finite loss (step {self.step}): "
                    "lower --lr, check the data, or use --dtype fp32 to rule out bf16"
                )
            return {"step": self.step, "skipped": 1}
        if totals["utts"] == 0:  # every utterance of the step was unreadable
            self.optimizer.zero_grad(set_to_none=True)
            return {"step": self.step, "skipped": 1}
        self.bad_in_a_row = 0
        if compiled:  # as the eager step: no gradient for an unread head
            self.model.readout.drop_unread_grads(read)
        self.dist.average_gradients(self.params)
        readout = self.model.readout
        if readout.tied_rows is not None:
            readout.sum_tied_grads()
            if self.step + 1 >= cfg.head_tie_steps:  # the last tied step: each head goes on alone
                readout.untie()
        grad_norm = float(torch.nn.utils.clip_grad_norm_(self.params, cfg.clip))
        self.optimizer.step()
        self.scheduler.step()
        self.optimizer.zero_grad(set_to_none=True)
        n = totals["utts"]
        asr = self.model.readout.loss_name  # CTC, or the decoder's cross-entropy
        distilling = {"kd_cos": totals["kd_cos"] / n, "kd_js": totals["kd_js"] / n} if self.teacher else {}
        # LID accuracy where the model identifies the language in training (not lidlora, not an expert)
        identifies = self.model.lid_head is not None or self.model.readout.tells_language
        lid = {"lid_acc": totals["lid_correct"] / n} if identifies else {}
        return {
            "step": self.step,
            "loss": totals["loss"] / n,
            asr: totals["asr"] / n,
            "lid": totals["lid"] / n,
            **lid,
            "utts": n,
            "audio_s": totals["audio_s"],
            "grad_norm": grad_norm,
            "lr": self.scheduler.get_last_lr()[0],
            "data_wait_s": wait,
            **distilling,
        }

    @torch.no_grad()
    def evaluate(self) -> dict:
        """Dev loss (the training objective, CTC + lid_weight x LID, with the true language's
        LoRA and head), LID accuracy and CER per language, decoding as the system would: single
        pass (hlora, shared-lora, ctc) or with the true language (lidlora)."""
        data = self.dev_data
        self.model.eval()
        routing_mode = "oracle" if self.cfg.model_type == "lidlora" else "predicted"
        langs = self.model.languages
        per = np.zeros((len(langs), len(EVAL_SUMS)))  # per language, columns EVAL_SUMS
        loss_sum = 0.0
        batches = duration_batches(data.durations, self.cfg.batch_seconds, self.cfg.seed, 0, shuffle=False)
        loadable = self._loadable(data)
        jobs = (Job(*loadable(idx)) for idx in batches[self.dist.rank :: self.dist.world_size])
        for loaded in load_in_background(jobs, self.model.backbone.frontend, self.workers, self.pin_memory):
            batch, feats = self._received(data, loaded)
            if not batch:
                continue
            if routing_mode != "oracle" and self.model.routes_by_language:
                # The loss of a misrouted utterance is not defined (its text is not in the chosen
                # head's inventory, or the decoder was forced to another language): the dev loss
                # is the training objective with the true routing, the texts the system's.
                feats = feats.to(self.device, non_blocking=self.pin_memory)
                with self._autocast():
                    out = self.model(feats, routing_mode)
                _, parts = self._forward(batch, feats, "oracle")
            else:
                out, parts = self._forward(batch, feats, routing_mode)
            loss_sum += float(parts.total) * len(batch)
            seconds = [e.utt.duration for e in batch]
            texts = self.model.readout.greedy_texts(self.model, out, seconds, self._autocast)
            for e, routed, hyp in zip(batch, out.lang_ids.tolist(), texts, strict=True):
                ref = normalize(strip_language_prefix(norm_text(e.utt)), e.utt.lang)
                errors, chars = char_errors([ref], [normalize(hyp, e.utt.lang)], e.utt.lang)
                per[e.lang_index] += [errors, chars, 1, routed == e.lang_index]
        totals = np.array(self.dist.sum([*per.reshape(-1).tolist(), loss_sum])).astype(float)
        per, loss_sum = totals[:-1].reshape(len(langs), len(EVAL_SUMS)), totals[-1]
        errors, chars, utts, lid_correct = per.T
        cers = {lang: errors[i] / max(1, chars[i]) for i, lang in enumerate(langs) if utts[i] > 0}
        result = {
            "step": self.step,
            "dev_loss": float(loss_sum / max(1, utts.sum())),
            "dev_lid_acc": float(lid_correct.sum() / max(1, utts.sum())),
            "dev_cer": float(np.mean(list(cers.values()))) if cers else float("nan"),
            **{f"dev_cer_{lang}": float(v) for lang, v in cers.items()},
        }
        self.last_eval = result
        return result

    def _improved(self, result: dict) -> bool:
        key = {"cer": "dev_cer", "loss": "dev_loss", "lid_acc": "dev_lid_acc"}[self.cfg.metric]
        value = float(result[key])  # a Python float: checkpoints load with weights_only
        better = self.best is None or (value > self.best if self.cfg.metric == "lid_acc" else value < self.best)
        if better:
            self.best, self.evals_since_best = value, 0
        else:
            self.evals_since_best += 1
        return better

    def _save_models(self, best: bool) -> None:
        if self.dist.is_main:
            run_state.save_model_dir(self.model, self.run_dir / "last")
            if best:
                run_state.save_model_dir(self.model, self.run_dir / "best")

    # --- the loop ------------------------------------------------------------------------
    def fit(self, on_step: Callback | None = None, on_eval: Callback | None = None) -> TrainSummary:
        """Train to the end (or an early stop); the run directory is unlocked when it returns or fails."""
        if self.dist.is_main:
            for line in self._dtype_note:
                say_on_stderr(line)
        try:
            return self._fit(on_step, on_eval)
        finally:
            self.release()

    def release(self) -> None:
        """Unlock the run directory: another training may write it from now on."""
        lock, self._lock = getattr(self, "_lock", None), None
        if lock is not None:
            lock.close()

    def _fit(self, on_step: Callback | None, on_eval: Callback | None) -> TrainSummary:
        cfg = self.cfg
        start = time.time()
        stop = False
        while self.step < self.total_steps and not stop:
            record = self.train_step()
            self.step += 1
            record["step"] = self.step
            self._log(record)
            if on_step:
                on_step(record)
            at_end = self.step == self.total_steps
            if self.dev_data is not None and (self.step % cfg.eval_every == 0 or at_end):
                result = self.evaluate()
                improved = self._improved(result)
                self._log(result)
                self._save_models(best=improved)
                if on_eval:
                    on_eval(result)
                stop = cfg.early_stop is not None and self.evals_since_best >= cfg.early_stop
            if self.step % cfg.save_every == 0 or at_end or stop:
                self._checkpoint()
        self.batches.close()
        if self.dev_data is None:
            self._save_models(best=True)  # without a dev set, best is the last
        self._checkpoint()
        plateau = self._plateau()
        if self.tensorboard is not None:
            self.tensorboard.close()
        trainable, frozen = self.model.parameter_counts()
        skipped = dict(self.train_data.skipped)
        return TrainSummary(
            self.step,
            self.best,
            cfg.metric,
            time.time() - start,
            trainable,
            frozen,
            skipped,
            self.train_data.unknown_chars,
            self.bad_total,
            self.last_eval,
            dict(self.unreadable),
            plateau,
        )

    def _plateau(self) -> dict[str, float]:
        """Log each language's emitted tokens per reference token over the last training batches,
        and return those still on CTC's all-blank plateau."""
        if self.emission is None:
            return {}
        self._log({"step": self.step, "emitted_per_ref_token": self.emission.ratios()})
        return self.emission.on_plateau()
