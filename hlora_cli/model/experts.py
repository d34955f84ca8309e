"""LoRA language experts (one language's LoRA in every layer + its CTC head, trained on its own)
and the models built from them: a MoLE model (`hlora fuse`), the teacher of a distillation (every
expert as one lidlora model: each utterance runs through its own language's expert in one batched
forward) and the student's starting point (`hlora distill`)."""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path

import torch

from hlora_cli.data.vocab import BLANK
from hlora_cli.errors import HloraError
from hlora_cli.model.checkpoint import check_model_dir, load_model, read_config, read_weights, weights_file
from hlora_cli.model.config import LIDConfig, LoRAConfig, ModelConfig
from hlora_cli.model.hlora import HloraModel


@dataclass
class Expert:
    dir: Path
    config: ModelConfig
    state: dict[str, torch.Tensor]  # its saved LoRA (1 adapter each) and head (heads.0)

    @property
    def lang(self) -> str:
        return self.config.languages[0]

    @property
    def vocab(self) -> list[str]:
        """Its CTC head's inventory ([] for a seq2seq expert: Whisper's own tokens)."""
        return self.config.vocabs.get(self.lang, [])


def load_experts(dirs: list[str | Path]) -> list[Expert]:
    """Expert model directories, checked to fit together: same backbone (fingerprint), same LoRA
    rank, scaling and targets, one language each and no language twice."""
    if not dirs:
        raise HloraError("no expert given: name the expert model directories (`hlora train --model-type expert`)")
    experts = []
    for d in dirs:
        path = check_model_dir(Path(d))
        config = read_config(path)
        if config.model_type != "expert":
            raise HloraError(
                f"{path}: is a {config.model_type} model, not an expert (`hlora train --model-type expert`)"
            )
        experts.append(Expert(path, config, read_weights(path / weights_file(config))))
    first = experts[0]
    for e in experts[1:]:
        if e.config.backbone.fingerprint != first.config.backbone.fingerprint:
            raise HloraError(
                f"{e.dir}: trained on another backbone (fingerprint {e.config.backbone.fingerprint}) than "
                f"{first.dir} ({first.config.backbone.fingerprint}): experts must share their encoder"
            )
        if (e.config.backbone_mode, e.config.encoder_input) != (first.config.backbone_mode, first.config.encoder_input):
            raise HloraError(
                f"{e.dir}: a {e.config.backbone_mode} expert ({e.config.encoder_input}), {first.dir} a "
                f"{first.config.backbone_mode} one ({first.config.encoder_input}): experts must be of one kind"
            )
        if e.config.lora != first.config.lora:
            raise HloraError(
                f"{e.dir}: LoRA {e.config.lora} differs from {first.dir}'s {first.config.lora}: "
                "train every expert with the same --lora-rank, --lora-alpha and --lora-targets"
            )
    seen: dict[str, Path] = {}
    for e in experts:
        if e.lang in seen:
            raise HloraError(f"{e.dir}: a second expert for {e.lang} (the first is {seen[e.lang]})")
        seen[e.lang] = e.dir
    return experts


def _combined(experts: list[Expert], model_type: str, lora: LoRAConfig | None = None, **fields) -> ModelConfig:
    first = experts[0].config
    return ModelConfig(
        model_type,
        replace(first.backbone),
        [e.lang for e in experts],
        lora=lora or replace(first.lora, targets=list(first.lora.targets)),
        bpe_models={e.lang: e.config.bpe_models[e.lang] for e in experts if e.lang in e.config.bpe_models},
        experts=[str(e.dir) for e in experts],
        backbone_mode=first.backbone_mode,
        encoder_input=first.encoder_input,
        **fields,
    )


def _vocabs(experts: list[Expert]) -> dict[str, list[str]]:
    return {} if experts[0].config.seq2seq else {e.lang: list(e.vocab) for e in experts}


def mole_config(experts: list[Expert], l1: int, lid: LIDConfig) -> ModelConfig:
    return _combined(experts, "mole", vocabs=_vocabs(experts), l1=l1, lid=lid)


def teacher_config(experts: list[Expert]) -> ModelConfig:
    """Every expert in one lidlora model: utterance b runs through its language's expert."""
    return _combined(experts, "lidlora", vocabs=_vocabs(experts))


def union_vocab(experts: list[Expert]) -> list[str]:
    """The student's one inventory: blank first, then every expert's tokens in order of first use."""
    if any(e.config.bpe_models for e in experts):
        raise HloraError(
            f"{experts[0].dir}: distillation maps every expert's tokens into one inventory, which needs "
            "character inventories; train the experts without --unit bpe"
        )
    tokens = [BLANK]
    for e in experts:
        tokens += [t for t in e.vocab if t not in tokens]
    return tokens


def student_config(experts: list[Expert], rank: int, alpha: float, dropout: float, lid: LIDConfig) -> ModelConfig:
    lora = LoRAConfig(rank, alpha, dropout, list(experts[0].config.lora.targets))
    vocab = [] if experts[0].config.seq2seq else union_vocab(experts)
    return _combined(experts, "student", lora, shared_vocab=vocab, lid=lid)


def load_expert_weights(model: HloraModel, experts: list[Expert]) -> None:
    """Copy expert i's LoRA into adapter i of every LoRA module and its head into head i (mole,
    teacher). Parameter names match: the same backbone wrapped the same way."""
    params = dict(model.named_parameters())
    with torch.no_grad():
        for i, e in enumerate(experts):
            for name, t in e.state.items():
                if ".lora_" in name:
                    target = params.get(name)
                    if target is None or target.shape[1:] != t.shape[1:]:
                        raise HloraError(f"{e.dir}: {name} does not fit the model built from the experts")
                    target[i].copy_(t[0])
                elif name.startswith("readout.heads.0."):
                    params[name.replace("heads.0.", f"heads.{i}.", 1)].copy_(t)
    expected = {n for n in params if ".lora_" in n}
    missing = expected - set(experts[0].state)
    if missing:
        raise HloraError(f"{experts[0].dir}: lacks LoRA weights the model needs ({sorted(missing)[:2]})")


def load_teacher(experts: list[Expert], device: torch.device) -> HloraModel:
    from hlora_cli.model.checkpoint import build_model

    with torch.random.fork_rng(devices=[]):  # its random init (overwritten) leaves the student's RNG as it was
        teacher = build_model(teacher_config(experts))
    load_expert_weights(teacher, experts)
    return teacher.to(device).eval().requires_grad_(False)


def init_student(model: HloraModel, experts: list[Expert]) -> None:
    """Start the student from the experts' average: each LoRA module's update is the mean of the
    experts' updates (its top `rank` singular components: exact when rank >= the experts' ranks
    summed), the rest of A keeping its random start; each head row is the mean of the experts'
    rows for that token."""
    params = dict(model.named_parameters())
    scale_e = experts[0].config.lora.alpha / experts[0].config.lora.rank
    with torch.no_grad():
        for m_name, module in _lora_modules(model):
            deltas = [
                scale_e * e.state[f"{m_name}.lora_B"][0].float() @ e.state[f"{m_name}.lora_A"][0].float()
                for e in experts
            ]
            mean = torch.stack(deltas).mean(0)
            u, s, vh = torch.linalg.svd(mean, full_matrices=False)
            rank = module.lora_A.shape[1]
            n = min(rank, int((s > s[0] * 1e-6).sum()))  # 0 when every expert's update is 0
            root = (s[:n] / module.scaling).sqrt()
            module.lora_B[0].zero_()
            module.lora_B[0, :, :n].copy_(u[:, :n] * root)
            module.lora_A[0, :n].copy_(root[:, None] * vh[:n])
        if model.config.seq2seq:  # one decoder, Whisper's own output layer: no head to average
            return
        vocab = model.config.shared_vocab
        w, b = params["readout.heads.0.weight"], params["readout.heads.0.bias"]
        sums, counts = torch.zeros_like(w), torch.zeros(len(vocab))
        bias = torch.zeros_like(b)
        index = {t: i for i, t in enumerate(vocab)}
        for e in experts:
            rows = torch.tensor([index[t] for t in e.vocab])
            sums[rows] += e.state["readout.heads.0.weight"]
            bias[rows] += e.state["readout.heads.0.bias"]
            counts[rows] += 1
        w.copy_(sums / counts[:, None])
        b.copy_(bias / counts)


def _lora_modules(model: HloraModel) -> list[tuple[str, torch.nn.Module]]:
    from hlora_cli.model.lora import LoRALinear

    return [(n, m) for n, m in model.named_modules() if isinstance(m, LoRALinear)]


def warm_start_mole(model: HloraModel, previous_dir: str | Path) -> None:
    """Fusion weights and router from an earlier MoLE model whose languages this one extends (a
    language added): the known languages keep their fusion logits and router outputs; a new
    language's fusion logit starts at the mean of the layer's logits, its router output at random."""
    previous = load_model(check_model_dir(Path(previous_dir)))
    if previous.config.model_type != "mole":
        raise HloraError(f"{previous_dir}: is a {previous.config.model_type} model; --init-from takes a mole model")
    if previous.config.l1 != model.config.l1:
        raise HloraError(f"{previous_dir}: was fused with --l1 {previous.config.l1}, this model with {model.config.l1}")
    if previous.config.lid != model.config.lid:
        raise HloraError(f"{previous_dir}: its router ({previous.config.lid}) differs from this one's")
    old, new = previous.languages, model.languages
    dropped = [lang for lang in old if lang not in new]
    if dropped:
        raise HloraError(f"{previous_dir}: knows {', '.join(dropped)}, which no expert given here covers")
    old_idx = torch.tensor([new.index(lang) for lang in old])
    with torch.no_grad():
        fusion = previous.fusion.detach()
        model.fusion.copy_(fusion.mean(1, keepdim=True).expand_as(model.fusion))
        model.fusion[:, old_idx] = fusion
        new_head = dict(model.lid_head.named_parameters())
        for name, t in previous.lid_head.named_parameters():
            target = new_head[name]
            if target.shape == t.shape:
                target.copy_(t)
            else:  # the output layer: one row per language
                target[old_idx] = t
