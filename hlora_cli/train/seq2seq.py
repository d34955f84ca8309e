"""What the trainer does differently for a seq2seq model (Whisper's decoder instead of CTC heads):
transcripts in Whisper's own tokens, the teacher-forced decoder pass with each utterance's routed
language token, its loss (and the distillation's), and dev decoding through `generate`."""

from __future__ import annotations

from dataclasses import dataclass

import torch

from hlora_cli.data.langs import base_language, language_code
from hlora_cli.data.manifest import read_manifest
from hlora_cli.errors import HloraError
from hlora_cli.model.whisper_decoder import generate, teacher_forcing, token_budget
from hlora_cli.train.losses import LossParts, seq2seq_distill_loss, seq2seq_loss


class WhisperTokens:
    """Whisper's tokenizer in the place of a Vocab (train/data.py encodes transcripts with it):
    one inventory for every language, no prefix tokens of ours (the decoder's prefix carries the
    language), and no unknown characters (byte-level BPE)."""

    def __init__(self, source: str, languages: list[str]) -> None:
        from transformers import WhisperTokenizer

        try:
            self.tokenizer = WhisperTokenizer.from_pretrained(source)
        except OSError as e:
            raise HloraError(f"{source}: no Whisper tokenizer there ({str(e).splitlines()[0][:200]})") from e
        vocab = self.tokenizer.get_vocab()
        missing = [lang for lang in languages if f"<|{lang}|>" not in vocab]
        if missing:
            raise HloraError(f"{source}: Whisper has no language token for {', '.join(missing)}")
        self.languages = list(languages)  # Whisper has a token for each; no inventories of ours
        self.bpe_models: dict[str, str] = {}

    # Targets as written (no character spacing for ja/ko/th/zh): Whisper's tokenizer reads words.
    word_targets = True

    def has_prefix_tokens(self, languages: list[str]) -> bool:
        return False

    def encode(self, text: str, lang: str, shared: bool = False) -> tuple[list[int], int]:
        return self.tokenizer.encode(text, add_special_tokens=False), 0


def manifest_languages(path: str) -> list[str]:
    """The languages of a manifest or of shards (sorted codes): a seq2seq model's default languages."""
    from hlora_cli.data.shards import ShardIndex, is_shard_dir

    codes = ShardIndex.load(path).languages if is_shard_dir(path) else {u.lang for u in read_manifest(path)}
    return sorted({base_language(language_code(c)) for c in codes})


@dataclass
class Seq2SeqForward:
    """One teacher-forced pass: the model output (encoder side), the decoder's logits, labels and
    decoder inputs, and the loss parts."""

    out: object
    logits: torch.Tensor
    labels: torch.Tensor
    parts: LossParts


def teacher_forced(model, out, targets: list[list[int]], hidden: bool) -> tuple[torch.Tensor, torch.Tensor, list]:
    """The decoder's logits on each utterance's transcript after its routed language's prefix."""
    bb = model.backbone
    codes = [model.languages[i] for i in out.lang_ids.tolist()]
    inputs, labels = teacher_forcing(bb.prefix(codes), targets, bb.eot)
    logits, states = model.decode(out.encoder_out, out.out_lengths, out.lang_ids, out.route_weights, inputs, hidden)
    return logits, labels, states


def forward(trainer, batch, feats, routing_mode: str) -> Seq2SeqForward:
    """Loss of one batch of a seq2seq model (and, for a student, its distillation terms)."""
    model = trainer.model
    feats = feats.to(trainer.device, non_blocking=trainer.pin_memory)
    langs = torch.tensor([e.lang_index for e in batch], device=trainer.device)
    targets = [e.targets for e in batch]
    layerwise = trainer.teacher is not None and trainer.cfg.kd == "layerwise"
    with trainer._autocast():
        out = model(feats, routing_mode, langs if routing_mode == "oracle" else None, hidden=layerwise)
        logits, labels, dec_states = teacher_forced(model, out, targets, layerwise)
    parts = seq2seq_loss(logits, labels, out, langs, trainer.lid_weight)
    if trainer.teacher is not None:
        with torch.no_grad(), trainer._autocast():
            t_out = trainer.teacher(feats, "oracle", langs, hidden=layerwise)
            t_logits, _, t_dec = teacher_forced(trainer.teacher, t_out, targets, layerwise)
        n_enc = len(out.hidden) if out.hidden is not None else 0
        token_lengths = torch.tensor([4 + len(t) for t in targets], device=trainer.device)
        parts = seq2seq_distill_loss(
            parts,
            out.hidden + dec_states if layerwise else None,
            t_out.hidden + t_dec if layerwise else None,
            n_enc,
            out.out_lengths,
            token_lengths,
            logits,
            t_logits,
            labels,
            trainer.cfg.kd_cos_weight if layerwise else 0.0,
            trainer.cfg.kd_js_weight,
        )
    return Seq2SeqForward(out, logits, labels, parts)


@torch.no_grad()
def dev_hypotheses(trainer, batch, feats, routing_mode: str) -> tuple[list[int], list[str]]:
    """Routed language and greedy text of each utterance, decoded as the system would."""
    model = trainer.model
    feats = feats.to(trainer.device, non_blocking=trainer.pin_memory)
    langs = torch.tensor([e.lang_index for e in batch], device=trainer.device)
    with trainer._autocast():
        out = model(feats, routing_mode, langs if routing_mode == "oracle" else None)
        caps = [token_budget(e.utt.duration) for e in batch]
        ids = generate(model, out, max_new_tokens=caps)
    return out.lang_ids.tolist(), [model.backbone.decode_tokens(t) for t in ids]
