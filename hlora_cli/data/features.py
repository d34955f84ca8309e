"""Feature frontends: waveforms to the padded input of an encoder (log-mel for Whisper, normalised
waveform for HuBERT/wav2vec2), computed per utterance so that padding never changes an
utterance's features.

A frontend holds no torch module and no weights: it is pickled to the data loader's worker
processes, which compute features there, beside reading the audio, while the model trains."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from hlora_cli.data.audio import SAMPLE_RATE
from hlora_cli.errors import HloraError


@dataclass
class Features:
    """Padded frontend input.

    values : shape = (batch, n_mels, n_frames) for Whisper, (batch, n_samples) for HuBERT/wav2vec2
    lengths : shape = (batch,), valid frames or samples of each utterance
    """

    values: torch.Tensor
    lengths: torch.Tensor

    def to(self, device: torch.device | str, non_blocking: bool = False) -> Features:
        values = self.values.to(device, non_blocking=non_blocking)
        return Features(values, self.lengths.to(device, non_blocking=non_blocking))

    def pin_memory(self) -> Features:
        """Page-locked copies, so that a copy to the GPU can overlap with compute."""
        return Features(self.values.pin_memory(), self.lengths.pin_memory())


def _as_numpy(w: np.ndarray | torch.Tensor) -> np.ndarray:
    if isinstance(w, torch.Tensor):
        w = w.detach().cpu().numpy()
    return np.asarray(w, dtype=np.float32).reshape(-1)


@dataclass
class Frontend:
    """What every frontend knows: the shortest audio that yields one output frame of its encoder."""

    min_samples: int
    kind: str

    def __call__(self, waveforms: list[np.ndarray | torch.Tensor]) -> Features:
        wavs = [_as_numpy(w) for w in waveforms]
        for i, w in enumerate(wavs):
            if len(w) < self.min_samples:
                raise HloraError(
                    f"utterance {i} of the batch has {len(w)} samples ({len(w) / SAMPLE_RATE:.3f} s), shorter than "
                    f"one output frame of the {self.kind} encoder ({self.min_samples} samples): drop or pad it"
                )
        return self.features(wavs)

    def features(self, wavs: list[np.ndarray]) -> Features:
        raise NotImplementedError


@dataclass
class LogMelFrontend(Frontend):
    """Whisper's log-mel spectrogram (transformers' WhisperFeatureExtractor) of each utterance at
    its own length, cut to an even number of frames (the encoder's stride-2 conv then gives
    exactly frames/2 outputs)."""

    feature_extractor: object = None
    max_frames: int = 3000  # mel frames the encoder's position table covers: 100 a second
    pad_to_max: bool = False  # Whisper's own input: every utterance padded to the whole window (30 s)

    def features(self, wavs: list[np.ndarray]) -> Features:
        if self.pad_to_max:
            return self._padded(wavs)
        mels = []
        for w in wavs:
            mel = self.feature_extractor(
                w, sampling_rate=SAMPLE_RATE, padding="longest", return_tensors="pt"
            ).input_features[0]
            mels.append(mel[:, : mel.shape[1] // 2 * 2])
        lengths = torch.tensor([m.shape[1] for m in mels])
        if int(lengths.max()) > self.max_frames:
            raise HloraError(
                f"an utterance of {int(lengths.max()) / 100:.1f} s exceeds the Whisper encoder's "
                f"{self.max_frames / 100:.0f} s window: split long audio before encoding"
            )
        values = torch.zeros(len(mels), mels[0].shape[0], int(lengths.max()))
        for i, m in enumerate(mels):
            values[i, :, : m.shape[1]] = m
        return Features(values, lengths)

    def _padded(self, wavs: list[np.ndarray]) -> Features:
        """As Whisper was trained: the waveform padded with zeros to the window, then log-mel
        (so the padding's frames are those of silence, not zeros), every frame valid."""
        longest = max(len(w) for w in wavs)
        if longest > self.max_frames * 160:
            raise HloraError(
                f"an utterance of {longest / SAMPLE_RATE:.1f} s exceeds the Whisper encoder's "
                f"{self.max_frames / 100:.0f} s window: split long audio before encoding"
            )
        values = self.feature_extractor(
            wavs, sampling_rate=SAMPLE_RATE, padding="max_length", max_length=self.max_frames * 160, return_tensors="pt"
        ).input_features
        return Features(values, torch.full((len(wavs),), values.shape[-1], dtype=torch.long))


@dataclass
class WaveformFrontend(Frontend):
    """The raw 16 kHz waveform, each utterance normalised to zero mean and unit variance where the
    model was trained so (`do_normalize` of its feature extractor)."""

    do_normalize: bool = True

    def features(self, wavs: list[np.ndarray]) -> Features:
        lengths = torch.tensor([len(w) for w in wavs])
        values = torch.zeros(len(wavs), int(lengths.max()))
        for i, w in enumerate(wavs):
            if self.do_normalize:
                w = (w - w.mean()) / np.sqrt(w.var() + 1e-7)
            values[i, : len(w)] = torch.from_numpy(w)
        return Features(values, lengths)
