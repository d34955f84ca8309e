"""Whisper zero-shot rows: an HF-format Whisper model detects the language (its own language
tokens) and transcribes (greedy, or beams); results go through the same output and scoring path.
A Whisper whose generation config forces a language (`hlora export hf` of a seq2seq model) is
decoded in that language, without detection.
Recordings over 30 s are decoded in windows, as seq2seq models are (infer/long_audio.py)."""

from __future__ import annotations

import time
from collections.abc import Callable
from functools import partial
from pathlib import Path

import torch

from hlora_cli.data.audio import load_audio
from hlora_cli.device import autocast, check_dtype, resolve_device
from hlora_cli.errors import HloraError
from hlora_cli.infer.inputs import Item, item_duration
from hlora_cli.infer.long_audio import text_windows
from hlora_cli.infer.options import DecodeOptions
from hlora_cli.infer.results import Report, Result
from hlora_cli.model.whisper_decoder import quiet_generation, retry_loops, text_tokens, token_budget
from text_normalization import normalize


class WhisperZeroShot:
    def __init__(
        self,
        model_dir: str,
        batch_size: int = 8,
        languages: list[str] | None = None,
        options: DecodeOptions | None = None,
    ) -> None:
        from transformers import WhisperForConditionalGeneration, WhisperProcessor

        from hlora_cli.model.backbone import quiet_transformers

        quiet_transformers()
        local = Path(model_dir)
        if local.is_dir() and not ((local / "tokenizer.json").is_file() or (local / "vocab.json").is_file()):
            raise HloraError(  # transformers would decode every utterance to an empty text
                f"{model_dir}: no tokenizer (tokenizer.json, or vocab.json and merges.txt); copy Whisper's "
                "tokenizer files into it"
            )
        try:
            self.processor = WhisperProcessor.from_pretrained(model_dir)
            self.model = WhisperForConditionalGeneration.from_pretrained(model_dir).eval()
        except (OSError, ValueError) as e:
            raise HloraError(f"{model_dir}: not a transformers Whisper directory ({str(e).splitlines()[0]})") from e
        except Exception as e:  # safetensors' own error: a model file cut short
            if type(e).__name__ != "SafetensorError":
                raise
            raise HloraError(f"{model_dir}: model.safetensors is not readable (cut short or corrupt: {e})") from e
        gen = self.model.generation_config
        if not getattr(gen, "lang_to_id", None):
            raise HloraError(
                f"{model_dir}: its generation config has no language tokens (lang_to_id): zero-shot decoding needs "
                "a multilingual Whisper with its decoder and generation_config.json"
            )
        self.lang_ids = {tok.strip("<|>"): i for tok, i in gen.lang_to_id.items()}
        self.forced = self._forced_language(model_dir, gen.language) if getattr(gen, "language", None) else None
        if self.forced and languages:
            raise HloraError(
                f"{model_dir}: its generation config forces language {self.forced} (as `hlora export hf` writes): "
                "--whisper-languages does not apply"
            )
        if languages:  # restrict detection to a language set (as a multilingual system would)
            missing = [lang for lang in languages if lang not in self.lang_ids]
            if missing:
                raise HloraError(f"Whisper has no language token for {', '.join(missing)}")
            self.lang_ids = {lang: self.lang_ids[lang] for lang in languages}
        self.sot = gen.decoder_start_token_id
        self.batch_size = batch_size
        self.options = options or DecodeOptions()
        self.device = resolve_device(self.options.device)  # --device and --dtype, as for --model
        self.dtype = check_dtype(self.options.dtype, self.device)
        self.model.to(self.device)

    def _forced_language(self, model_dir: str, language: str) -> str:
        """The code of a generation config's `language` ("de", "<|de|>" or "german")."""
        from transformers.models.whisper.tokenization_whisper import TO_LANGUAGE_CODE

        code = language.strip("<|>").lower()
        code = TO_LANGUAGE_CODE.get(code, code)
        if code not in self.lang_ids:
            raise HloraError(f"{model_dir}: its generation config forces language '{language}', which has no token")
        return code

    def languages(
        self, feats: list[torch.Tensor], wins: list, by_item: dict[int, list[int]]
    ) -> dict[int, tuple[str, dict[str, float]]]:
        """Each recording's language and posteriors (`by_item`: its windows' indices): the forced
        language of an exported model, or detected once from the windows' duration-weighted posteriors."""
        if self.forced:
            return {i: (self.forced, {self.forced: 1.0}) for i in by_item}
        codes, step = list(self.lang_ids), self.batch_size
        probs = torch.cat([self.detect(torch.stack(feats[b : b + step])) for b in range(0, len(feats), step)])
        out = {}
        for i, ns in by_item.items():
            weights = torch.tensor([wins[n].end - wins[n].start for n in ns])
            mean = (probs[ns] * weights[:, None]).sum(0) / weights.sum()
            posteriors = {c: round(float(x), 4) for c, x in zip(codes, mean.tolist(), strict=True) if x >= 1e-4}
            out[i] = codes[int(mean.argmax())], posteriors
        return out

    @torch.no_grad()
    def detect(self, features: torch.Tensor) -> torch.Tensor:
        """Posteriors over the language tokens from the decoder's first step, (batch, languages)."""
        features = features.to(self.device)
        start = torch.full((features.shape[0], 1), self.sot, dtype=torch.long, device=self.device)
        with autocast(self.device, self.dtype):
            enc = self.model.get_encoder()(features).last_hidden_state
            logits = self.model.model.decoder(input_ids=start, encoder_hidden_states=enc).last_hidden_state
            logits = self.model.proj_out(logits[:, -1])
        return torch.softmax(logits[:, list(self.lang_ids.values())].float(), dim=-1).cpu()

    @torch.no_grad()
    def _texts(
        self, feats: list[torch.Tensor], lang: str, caps: list[int], rows: list[int], no_repeat: int
    ) -> list[str]:
        """The texts of windows `rows` of a batch in one language (`feats`, their token budgets
        `caps`): generated together to the batch's longest budget, each cut to its own."""
        opt, tokenizer = self.options, self.processor.tokenizer
        with autocast(self.device, self.dtype), quiet_generation():
            ids = self.model.generate(
                torch.stack([feats[i] for i in rows]).to(self.device),
                language=lang,
                task="transcribe",
                num_beams=opt.seq2seq_beams,
                do_sample=False,
                no_repeat_ngram_size=no_repeat,
                max_new_tokens=min(max(caps), self.model.config.max_target_positions - 4),
            )
        special = set(tokenizer.all_special_ids)
        return [
            tokenizer.decode(text_tokens(row, special, caps[i])).strip()
            for i, row in zip(rows, ids.tolist(), strict=True)
        ]

    def run(self, items: list[Item], on_progress: Callable[[float], None] | None = None) -> Report:
        """Every recording in windows of at most 30 s (text_windows: equal, no overlap, their texts
        joined), its language found once (`languages`), then generated window by window with that
        language forced."""
        start = time.time()
        opt = self.options
        feats, wins, skipped = [], [], []
        for i, it in enumerate(items):
            try:
                duration = item_duration(it)
                parts = text_windows(i, duration, min(opt.window, 30.0))
                waves = [load_audio(it.audio, (it.start or 0.0) + w.start, (it.start or 0.0) + w.end) for w in parts]
            except HloraError as e:
                skipped.append((it.id, str(e)))
                continue
            fe = self.processor.feature_extractor
            feats += list(fe(waves, sampling_rate=16000, return_tensors="pt").input_features)
            wins += parts
        by_item: dict[int, list[int]] = {}
        for n, w in enumerate(wins):
            by_item.setdefault(w.item, []).append(n)
        found = self.languages(feats, wins, by_item) if wins else {}
        lang_of = {i: lang for i, (lang, _) in found.items()}
        texts = [""] * len(wins)
        for lang in sorted(set(lang_of.values())):  # generate per language
            idx = [n for n, w in enumerate(wins) if lang_of[w.item] == lang]
            for b in range(0, len(idx), self.batch_size):
                part = idx[b : b + self.batch_size]
                caps = [token_budget(wins[n].end - wins[n].start, opt.max_tokens_per_second) for n in part]
                write = partial(self._texts, [feats[n] for n in part], lang, caps)  # (rows, no_repeat)
                first = write(list(range(len(part))), opt.no_repeat_ngram)
                for n, text in zip(part, retry_loops(first, opt.loop_ngram, opt.no_repeat_ngram, write), strict=True):
                    texts[n] = text
        results, audio = [], 0.0
        for i, ns in by_item.items():
            it, lang = items[i], lang_of[i]
            text = " ".join(texts[n] for n in ns if texts[n])
            results.append(Result(it.id, lang, found[i][1], normalize(text, lang), [], it.duration))
            audio += it.duration
            if on_progress:
                on_progress(it.duration)
        return Report(results, skipped, audio, time.time() - start)
