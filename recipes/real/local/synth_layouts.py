"""A tiny synthetic copy of the three corpora recipes/real reads, laid out as their repositories are,
for `make smoke` (CI has no real data). Speech by espeak-ng; our own sentences.

    synth_layouts.py DIR

writes DIR/speechocean762 (Kaldi train/ and test/, paths relative to the corpus root, upper-case
text), DIR/Korean-Read-Speech-Corpus/dataset (three rooms, each reading the same sentences; the
JSON transcript file) and DIR/Domain-Open-source-Datasets/<zh corpus> (48 kHz WAVs, prosody-marked
transcripts with pinyin lines), then DIR/.done.
"""

from __future__ import annotations

import json
import random
import sys
from pathlib import Path

import numpy as np
import soundfile as sf
import soxr

from hlora_cli.data.synth import pick_voice, synthesize

EN = [
    "the cat sat on the mat",
    "we call it a bear",
    "she reads a book every day",
    "open the window please",
    "my brother likes green apples",
    "the bus is late again",
    "they play football at noon",
    "it is cold in winter",
    "kate loves china",
    "where is the station",
    "mark is going to see an elephant",
    "i want some water",
    "the sun is very bright",
]
KO = [
    "저 식당 음식이 정말 맛있나 봐요",
    "오늘은 날씨가 아주 좋아요",
    "내일 아침에 만나요",
    "이 책은 정말 재미있어요",
    "지하철역이 어디에 있어요",
    "커피 한 잔 주세요",
    "우리는 공원에서 산책했어요",
    "주말에 영화를 봤어요",
]
ZH = [
    ("education", "它#1包含了#1课程#2，就#1大班#1课程#4。"),
    ("education", "我们#1明天#1上课#4。"),
    ("education", "这个#1老师#1很好#4。"),
    ("education", "请#1打开#1书本#4。"),
    ("education", "学生#1都在#1教室#4。"),
    ("finance", "您的#1账户#1已经#1开通#4。"),
    ("finance", "请问#1您#1需要#1什么#1帮助#4？"),
    ("finance", "这笔#1钱#1明天#1到账#4。"),
    ("finance", "利率#1是#1多少#4？"),
    ("finance", "谢谢#1您的#1来电#4。"),
]
ROOMS = ("AirbnbStudio", "AnechoicChamber", "DanceStudio")


def speak(text: str, lang: str, out: Path, rng: random.Random, rate: int = 16000) -> None:
    out.parent.mkdir(parents=True, exist_ok=True)
    synthesize(text, pick_voice(lang, "train", rng, None), out)
    if rate != 16000:  # the zh corpus is 48 kHz
        x, sr = sf.read(out, dtype="float32")
        sf.write(out, soxr.resample(x, sr, rate).astype(np.float32), rate, subtype="PCM_16")


def speechocean(root: Path, rng: random.Random) -> None:
    for split, sentences in (("train", EN[:8]), ("test", EN[8:])):
        (root / split).mkdir(parents=True, exist_ok=True)
        scp, text = [], []
        for i, sentence in enumerate(sentences):
            speaker = f"{(1 if split == 'train' else 2) * 10 + i % 3:04d}"
            utt = f"{speaker}{i:05d}"
            rel = f"WAVE/SPEAKER{speaker}/{utt}.WAV"
            speak(sentence, "en", root / rel, rng)
            scp.append(f"{utt}\t{rel}\n")
            text.append(f"{utt}\t{sentence.upper()}\n")
        (root / split / "wav.scp").write_text("".join(scp))
        (root / split / "text").write_text("".join(text))


def korean(root: Path, rng: random.Random) -> None:
    dataset = root / "dataset"
    meta: dict[str, dict] = {}
    for r, room in enumerate(ROOMS):
        meta[room] = {}
        for i, sentence in enumerate(KO):
            utt = f"sub10{r}10{i % 2}a{i:05d}"
            speak(sentence, "ko", dataset / room / f"{utt}.wav", rng)
            meta[room][utt] = {
                "subjectID": f"sub10{r}1",
                "speaker": "ab"[i % 2],
                "location": r,
                "distance": i % 3,
                "device": i % 2,
                "text": sentence + ".",
                "text_code": f"aa{i}",
            }
    (dataset / "Korean_Read_Speech_Corpus_sample.json").write_text(json.dumps(meta))


def mandarin(root: Path, rng: random.Random) -> None:
    corpus = root / "Mandarin_Chinese_Speech_Corpus_for_TTS_Customer_Service_Scene"
    lines: dict[str, list[str]] = {}
    for i, (domain, marked) in enumerate(ZH):
        utt = f"{100001 + i}"
        speak(
            marked.replace("#1", "").replace("#2", "").replace("#4", ""),
            "zh",
            corpus / "Wave" / domain / f"{utt}.wav",
            rng,
            rate=48000,
        )
        lines.setdefault(domain, []).append(f"{utt}\t{marked}\n\tni3 hao3\n")
    (corpus / "ProsodyLabeling").mkdir(parents=True, exist_ok=True)
    for domain, rows in lines.items():
        (corpus / "ProsodyLabeling" / f"{domain}.txt").write_text("".join(rows))


def main() -> None:
    out = Path(sys.argv[1])
    rng = random.Random(0)
    speechocean(out / "speechocean762", rng)
    korean(out / "Korean-Read-Speech-Corpus", rng)
    mandarin(out / "Domain-Open-source-Datasets", rng)
    (out / ".done").write_text("")


if __name__ == "__main__":
    main()
