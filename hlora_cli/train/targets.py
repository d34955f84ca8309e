"""What the training targets are written in, chosen by the model's readout: our token inventories
(data/vocab.py, CTC heads) or Whisper's own tokens (its decoder), and the languages a training
takes when none are given."""

from __future__ import annotations

from hlora_cli.data.langs import base_language, language_code
from hlora_cli.data.manifest import read_manifest
from hlora_cli.data.vocab import Vocab
from hlora_cli.errors import HloraError
from hlora_cli.model.experts import Expert
from hlora_cli.train.data import experts_vocab


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

    def head_inventories(self, languages: list[str], shared: bool) -> tuple[dict[str, list[str]], list[str]]:
        return {}, []  # the decoder writes Whisper's tokens: no CTC head, no inventory of ours

    def bpe_models_for(self, languages: list[str], shared: bool) -> dict[str, str]:
        return {}

    def encode(self, text: str, lang: str, shared: bool = False) -> tuple[list[int], int]:
        return self.tokenizer.encode(text, add_special_tokens=False), 0


def manifest_languages(path: str) -> list[str]:
    """The languages of a manifest or of shards (sorted codes): a seq2seq model's default languages."""
    from hlora_cli.data.shards import ShardIndex, is_shard_dir

    codes = ShardIndex.load(path).languages if is_shard_dir(path) else {u.lang for u in read_manifest(path)}
    return sorted({base_language(language_code(c)) for c in codes})


def target_tokens(
    backbone_mode: str, vocab: str | None, backbone: str, train: str, languages: list[str], experts: list[Expert] | None
) -> tuple[Vocab | WhisperTokens, list[str]]:
    """The tokens the targets are written in and the training's languages: the experts', else
    those given, else (CTC heads) the vocab's or (Whisper's decoder) the training data's."""
    if experts:
        langs = [e.lang for e in experts]
        ref = experts[0].config.backbone
        if experts[0].config.seq2seq:
            return WhisperTokens(ref.source or ref.tokenizer, langs), langs
        return experts_vocab(experts), langs
    if backbone_mode == "seq2seq":  # no inventory of ours: languages as given, or the manifest's
        given = languages or manifest_languages(train)
        return WhisperTokens(backbone, given), given
    tokens = Vocab.load(vocab)
    return tokens, languages or list(tokens.languages)
