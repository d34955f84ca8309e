"""What one forward of the model core gives back (model/hlora.py), for every readout."""

from __future__ import annotations

from dataclasses import dataclass

import torch


@dataclass
class ModelOutput:
    """lid_logprobs : shape = (batch, n_languages), LID log-posteriors (None without LID)
    lang_ids : shape = (batch,), index of the language whose routed LoRA (argmax) and head were used
    out_lengths : shape = (batch,), valid frames per utterance
    route_weights : shape = (batch, n_languages), soft/top2 routing weights (None when hard)
    hidden : every layer's output, when asked for (distillation)

    Then what the model's readout (model/readout.py) made of the encoder output; each readout
    fills its own fields and leaves the other's None:
    ctc_logprobs : CTC heads, shape = (batch, frames, max vocab), per-frame log-probabilities of
        each utterance's head
    head_ctc_logprobs : CTC heads in soft training only, every head's log-probabilities, a list
        over heads of shape = (batch, frames, vocab of head l) (the loss weights each by route_weights)
    encoder_out : Whisper's decoder, shape = (batch, frames, d_model): the encoder output, the
        memory it cross-attends to while it writes the text (teacher-forced or generated)"""

    lid_logprobs: torch.Tensor | None
    lang_ids: torch.Tensor
    ctc_logprobs: torch.Tensor | None
    out_lengths: torch.Tensor
    route_weights: torch.Tensor | None = None
    head_ctc_logprobs: list[torch.Tensor] | None = None
    hidden: list[torch.Tensor] | None = None
    encoder_out: torch.Tensor | None = None
