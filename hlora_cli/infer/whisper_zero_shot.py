"""Whisper zero-shot rows: an HF-format Whisper model detects the language (its own language
tokens) and transcribes greedily; results go through the same output and scoring path."""

from __future__ import annotations

import time
from collections.abc import Callable

import torch

from hlora_cli.data.audio import load_audio
from hlora_cli.errors import HloraError
from hlora_cli.infer.inputs import Item, item_duration
from hlora_cli.infer.runner import Report, Result
from text_normalization import normalize


class WhisperZeroShot:
    def __init__(self, model_dir: str, batch_size: int = 8, languages: list[str] | None = None) -> None:
        from transformers import WhisperForConditionalGeneration, WhisperProcessor

        from hlora_cli.model.backbone import quiet_transformers

        quiet_transformers()
        try:
            self.processor = WhisperProcessor.from_pretrained(model_dir)
            self.model = WhisperForConditionalGeneration.from_pretrained(model_dir).eval()
        except OSError as e:
            raise HloraError(f"{model_dir}: not a transformers Whisper directory ({e})") from e
        gen = self.model.generation_config
        self.lang_ids = {tok.strip("<|>"): i for tok, i in gen.lang_to_id.items()}
        if languages:  # restrict detection to a language set (as a multilingual system would)
            missing = [lang for lang in languages if lang not in self.lang_ids]
            if missing:
                raise HloraError(f"Whisper has no language token for {', '.join(missing)}")
            self.lang_ids = {lang: self.lang_ids[lang] for lang in languages}
        self.sot = gen.decoder_start_token_id
        self.batch_size = batch_size

    @torch.no_grad()
    def detect(self, features: torch.Tensor) -> torch.Tensor:
        """Posteriors over the language tokens from the decoder's first step, (batch, languages)."""
        enc = self.model.get_encoder()(features).last_hidden_state
        start = torch.full((features.shape[0], 1), self.sot, dtype=torch.long)
        logits = self.model.model.decoder(input_ids=start, encoder_hidden_states=enc).last_hidden_state
        logits = self.model.proj_out(logits[:, -1])
        return torch.softmax(logits[:, list(self.lang_ids.values())], dim=-1)

    @torch.no_grad()
    def run(self, items: list[Item], on_progress: Callable[[float], None] | None = None) -> Report:
        start = time.time()
        results, skipped, audio = [], [], 0.0
        codes = list(self.lang_ids)
        for b in range(0, len(items), self.batch_size):
            batch, waves = [], []
            for it in items[b : b + self.batch_size]:
                try:
                    if item_duration(it) > 30:
                        raise HloraError(f"{it.audio}: longer than Whisper's 30 s window")
                    waves.append(load_audio(it.audio, it.start, it.end))
                    batch.append(it)
                except HloraError as e:
                    skipped.append((it.id, str(e)))
            if not batch:
                continue
            feats = self.processor.feature_extractor(waves, sampling_rate=16000, return_tensors="pt").input_features
            probs = self.detect(feats)
            langs = [codes[i] for i in probs.argmax(-1).tolist()]
            texts = [""] * len(batch)
            for lang in sorted(set(langs)):  # generate per detected language
                idx = [i for i, code in enumerate(langs) if code == lang]
                ids = self.model.generate(feats[idx], language=lang, task="transcribe", num_beams=1, do_sample=False)
                for i, t in zip(idx, self.processor.batch_decode(ids, skip_special_tokens=True), strict=True):
                    texts[i] = t.strip()
            for it, lang, p, text in zip(batch, langs, probs.tolist(), texts, strict=True):
                lang_probs = {c: round(float(x), 4) for c, x in zip(codes, p, strict=True) if x >= 1e-4}
                results.append(Result(it.id, lang, lang_probs, normalize(text, lang), [], it.duration))
                audio += it.duration
            if on_progress:
                on_progress(sum(it.duration for it in batch))
        return Report(results, skipped, audio, time.time() - start)
