"""The data path: how fast the training loader delivers audio, whether training waits for it, and
how long a million-line manifest takes to start.

1. Loader throughput: audio-seconds per second delivered by the training loader (duration-bucket
   sampler -> worker processes reading and featurising -> batches in order) with 0, 1 and 2
   workers, for 16 kHz WAV, 48 kHz FLAC, Opus and MP3 made from the same espeak-ng speech, with the
   waveform frontend (HuBERT / wav2vec2) and the log-mel frontend (Whisper).
2. Training: Whisper-base HLoRA steps per second on this CPU on the MP3 corpus with workers off and
   on, and the share of step time spent waiting for data.
3. Start-up: a 1,000,000-line manifest (a few real files repeated) read, validated and bucketed, in
   a child process: seconds and peak resident memory.

All variants run in this one run, side by side. Usage:
    python bench/data_speed.py [--quick] [--whisper DIR]
The last line printed is one JSON object; the results also go to BENCHMARKS.md."""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

ROOT = Path(__file__).resolve().parents[1]
FORMATS = {  # name: (suffix, sample rate, soundfile format, subtype)
    "wav16k": (".wav", 16000, "WAV", "PCM_16"),
    "flac16k": (".flac", 16000, "FLAC", "PCM_16"),  # the codec and rate of the tar shards' audio
    "flac48k": (".flac", 48000, "FLAC", "PCM_16"),
    "opus": (".opus", 48000, "OGG", "OPUS"),
    "mp3": (".mp3", 48000, "MP3", "MPEG_LAYER_III"),
}
LANGS = ("en", "de", "fr", "es")


def make_corpus(out: Path, per_language: int) -> dict[str, Path]:
    """espeak-ng speech from the demo's sentences, written in every format; a manifest per format
    (with durations and normalized text, as `hlora prepare` and `hlora normalize` write them)."""
    from dataclasses import replace

    import soundfile as sf
    import soxr

    from hlora_cli.data.audio import load_audio
    from hlora_cli.data.manifest import write_manifest
    from hlora_cli.data.synth import synth_corpus
    from text_normalization import normalize

    sentences = {lang: (ROOT / "recipes/demo/sentences" / f"{lang}.txt").read_text().splitlines() for lang in LANGS}
    utts = synth_corpus(sentences, "train", per_language, out / "wav16k")
    manifests = {}
    for name, (suffix, sr, fmt, subtype) in FORMATS.items():
        (out / name).mkdir(exist_ok=True)
        rows = []
        for u in utts:
            path = out / name / (Path(u.audio).stem + suffix)
            if name != "wav16k" and not path.exists():
                x = load_audio(u.audio)
                sf.write(str(path), soxr.resample(x, 16000, sr) if sr != 16000 else x, sr, format=fmt, subtype=subtype)
            duration = round(sf.info(str(path)).duration, 3)
            rows.append(replace(u, audio=str(path), duration=duration, text_norm=normalize(u.text, u.lang)))
        manifests[name] = write_manifest(out / f"{name}.jsonl", rows)
    return manifests


def loader_rate(manifest: Path, frontend, workers: int, audio_seconds: float) -> float:
    """Audio-seconds per second the training loader delivers (after its first batch, which pays
    for starting the workers)."""
    from hlora_cli.data.batching import DurationBatchSampler
    from hlora_cli.data.loader import Segment
    from hlora_cli.data.manifest import read_manifest
    from hlora_cli.train.batches import TrainBatches

    utts = read_manifest(manifest)

    def segments(idx):
        return idx, [Segment(utts[i].audio, utts[i].start, utts[i].end) for i in idx]

    sampler = DurationBatchSampler([u.duration for u in utts], 30.0, seed=0)
    batches = TrainBatches(sampler, segments, frontend, workers)
    batches.next()
    delivered, start = 0.0, time.perf_counter()
    while delivered < audio_seconds:
        delivered += sum(utts[i].duration for i in batches.next().key)
    rate = delivered / (time.perf_counter() - start)
    batches.close()
    return rate


def write_corpus_shards(manifest: Path, out: Path) -> Path:
    """The corpus of `manifest` as tar shards (`hlora prepare shards`), made once."""
    from hlora_cli.data.manifest import read_manifest
    from hlora_cli.data.shards import is_shard_dir, write_shards

    if not is_shard_dir(out):
        write_shards(read_manifest(manifest), out, shard_size=40)
    return out


class ShardRow:
    """A shard's row as the loader's key needs it (module level: it travels to the workers)."""

    def __init__(self, meta: dict, name: str) -> None:
        from hlora_cli.data.manifest import Utterance

        self.utt = Utterance(meta["id"], name, meta["lang"], meta["text"], duration=meta["duration"])


def shard_rate(root: Path, frontend, workers: int, audio_seconds: float) -> float:
    """As loader_rate, streaming the shards: this process reads them, the workers decode."""
    from hlora_cli.data.loader import Segment
    from hlora_cli.data.shards import ShardIndex, ShardStream
    from hlora_cli.train.batches import TrainBatches

    def segments(items):
        return [e for e, _ in items], [Segment(e.utt.audio, data=flac) for e, flac in items]

    stream = ShardStream(ShardIndex.load(root), ShardRow, 30.0, seed=0)
    batches = TrainBatches(stream, segments, frontend, workers)
    batches.next()
    delivered, start = 0.0, time.perf_counter()
    while delivered < audio_seconds:
        delivered += sum(e.utt.duration for e in batches.next().key)
    rate = delivered / (time.perf_counter() - start)
    batches.close()
    return rate


def train_run(manifest: Path, whisper: Path, workers: int, steps: int, out: Path) -> dict:
    """Whisper-base HLoRA (k=3) on this CPU: steps per second after two warm-up steps, and the
    share of that time spent waiting for data."""
    from hlora_cli.data.manifest import read_manifest
    from hlora_cli.data.vocab import build_vocab
    from hlora_cli.train.config import load_config
    from hlora_cli.train.trainer import Trainer

    vocab = out / "vocab.json"
    if not vocab.exists():
        build_vocab(read_manifest(manifest)).save(vocab)
    name = f"run_{'shards' if manifest.is_dir() else 'files'}_w{workers}"
    cfg = load_config(
        None,
        dict(
            model_type="hlora",
            k=3,
            backbone=str(whisper),
            train=str(manifest),
            vocab=str(vocab),
            lora_rank=8,
            batch_seconds=20.0,
            max_steps=steps + 2,
            save_every=10_000,
            num_workers=workers,
        ),
    )
    trainer = Trainer(cfg, out / name, overwrite=True)
    stamps, waits = [], []

    def on_step(r: dict) -> None:
        stamps.append(time.perf_counter())
        waits.append(r.get("data_wait_s", 0.0))

    trainer.fit(on_step)
    elapsed = stamps[-1] - stamps[1]  # steps 3..N
    return {"steps_per_s": steps / elapsed, "data_wait_share": sum(waits[2:]) / elapsed}


def manifest_child(path: Path) -> None:
    """Read, validate and bucket `path` as `hlora train` starts; print seconds and peak MB."""
    from hlora_cli.data.batching import DurationBatchSampler
    from hlora_cli.data.vocab import Vocab
    from hlora_cli.train.data import load_examples

    vocab = Vocab.load(path.with_name("vocab.json"))
    start = time.perf_counter()
    data = load_examples(path, vocab, list(vocab.languages), False, 30.0)
    sampler = DurationBatchSampler(data.durations, 120.0, seed=0, groups=[e.lang_index for e in data.examples])
    seconds = time.perf_counter() - start
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux: kilobytes
    summary = {"seconds": seconds, "peak_mb": peak_mb, "utterances": len(data.examples), "batches": len(sampler)}
    print(json.dumps(summary))


def manifest_1m(corpus: Path, manifest: Path, lines: int) -> dict:
    """A `lines`-line manifest repeating the corpus' rows under new ids, timed in a child."""
    from hlora_cli.data.manifest import read_manifest
    from hlora_cli.data.vocab import build_vocab

    rows = [json.loads(line) for line in manifest.read_text().splitlines()]
    big = corpus / "manifest_1m.jsonl"
    build_vocab(read_manifest(manifest)).save(corpus / "vocab.json")
    # each row's JSON with a hole for its id: a million json.dumps calls would take longer than the reading
    templates = [json.dumps({**row, "id": "@ID@"}, ensure_ascii=False).split("@ID@") for row in rows]
    with open(big, "w", encoding="utf-8") as f:
        for i in range(lines):
            head, tail = templates[i % len(rows)]
            f.write(f"{head}{rows[i % len(rows)]['id']}-{i:07d}{tail}\n")
    r = subprocess.run(
        [sys.executable, __file__, "--manifest-child", str(big)], capture_output=True, text=True, check=True
    )
    return json.loads(r.stdout.strip().splitlines()[-1])


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--quick", action="store_true", help="fewer audio seconds and steps (under 3 minutes)")
    p.add_argument("--whisper", type=Path, default=Path.home() / ".cache/hlora/whisper-base")
    p.add_argument("--data", type=Path, default=ROOT / "exp/bench/data_speed", help="corpus (made once, reused)")
    p.add_argument("--manifest-child", type=Path, help=argparse.SUPPRESS)
    p.add_argument("--shards-only", action="store_true", help="only the shards rows, against per-file reading")
    args = p.parse_args()
    if args.manifest_child:
        return manifest_child(args.manifest_child)
    if not (args.whisper / "config.json").exists():
        sys.exit(f"error: {args.whisper}: no Whisper-base there; run `make whisper-base` or pass --whisper DIR")

    from bench.common import machine, write_section

    t0 = time.time()
    args.data.mkdir(parents=True, exist_ok=True)
    manifests = make_corpus(args.data, per_language=12 if args.quick else 40)
    from transformers import WhisperFeatureExtractor

    from hlora_cli.data.features import LogMelFrontend, WaveformFrontend

    frontends = {
        "waveform": WaveformFrontend(400, "hubert", do_normalize=True),
        "log-mel": LogMelFrontend(320, "whisper", WhisperFeatureExtractor.from_pretrained(args.whisper)),
    }
    seconds = 80.0 if args.quick else 600.0
    if args.shards_only:
        return shards_bench(args, manifests, frontends, seconds, t0)
    rates: dict = {}
    for fmt, manifest in manifests.items():
        for fe_name, frontend in frontends.items():
            rates.setdefault(fmt, {})[fe_name] = {
                str(w): round(loader_rate(manifest, frontend, w, seconds), 1) for w in (0, 1, 2)
            }
            print(f"loader {fmt:8s} {fe_name:8s}: {rates[fmt][fe_name]} audio-s/s by workers", flush=True)
    steps = 3 if args.quick else 12
    training = {str(w): train_run(manifests["mp3"], args.whisper, w, steps, args.data) for w in (0, 1)}
    for w, r in training.items():
        rate, wait = r["steps_per_s"], r["data_wait_share"]
        print(f"train Whisper-base, mp3, {w} worker(s): {rate:.3f} steps/s, waiting for data {wait:.1%}")
    big = manifest_1m(args.data, manifests["wav16k"], 1_000_000)
    print(f"1M-line manifest: {big['seconds']:.1f} s, peak {big['peak_mb']:.0f} MB")
    result = {
        "machine": machine(),
        "cores": os.cpu_count(),
        "quick": args.quick,
        "loader_audio_s_per_s": rates,
        "train_steps_per_s": {w: round(r["steps_per_s"], 3) for w, r in training.items()},
        "data_wait_share_no_workers": round(training["0"]["data_wait_share"], 4),
        "data_wait_share": round(training["1"]["data_wait_share"], 4),
        "manifest_1m_s": round(big["seconds"], 1),
        "manifest_1m_mb": round(big["peak_mb"]),
        "wall_s": round(time.time() - t0),
    }
    write_section("data_speed", _report(result), result)
    print(json.dumps(result))


def shards_bench(args, manifests: dict[str, Path], frontends: dict, seconds: float, t0: float) -> None:
    """Tar shards against one file per utterance, on the same 16 kHz audio: the loader's rate by
    workers, and a training's share of time waiting for data (goal: at most 5 % of a step)."""
    from bench.common import machine, write_section

    root = write_corpus_shards(manifests["wav16k"], args.data / "shards")
    rates: dict = {}
    for fe_name, frontend in frontends.items():
        for w in (0, 1, 2):  # side by side, worker count by worker count
            files = loader_rate(manifests["flac16k"], frontend, w, seconds)
            wav = loader_rate(manifests["wav16k"], frontend, w, seconds)
            shards = shard_rate(root, frontend, w, seconds)
            rates.setdefault(fe_name, {})[str(w)] = {
                "files": round(files, 1), "wav_files": round(wav, 1), "shards": round(shards, 1)
            }  # fmt: skip
            print(f"loader {fe_name:8s} {w} worker(s): FLAC files {files:.1f}, WAV files {wav:.1f}, "
                  f"shards {shards:.1f} audio-s/s", flush=True)  # fmt: skip
    steps = 3 if args.quick else 12
    training = {
        kind: train_run(source, args.whisper, 1, steps, args.data)
        for kind, source in (("files", manifests["flac16k"]), ("shards", root))
    }
    for kind, r in training.items():
        print(
            f"train Whisper-base, {kind}, 1 worker: {r['steps_per_s']:.3f} steps/s, waiting {r['data_wait_share']:.1%}"
        )
    result = {
        "machine": machine(),
        "cores": os.cpu_count(),
        "quick": args.quick,
        "loader_audio_s_per_s": rates,
        "shards_over_files": {
            fe: {w: round(v["shards"] / v["files"], 2) for w, v in by.items()} for fe, by in rates.items()
        },
        "train_steps_per_s": {k: round(r["steps_per_s"], 3) for k, r in training.items()},
        "data_wait_share": {k: round(r["data_wait_share"], 4) for k, r in training.items()},
        "goal_wait_met": training["shards"]["data_wait_share"] <= 0.05,
        "wall_s": round(time.time() - t0),
    }
    rows = [
        "| frontend | workers | files (audio-s/s) | shards (audio-s/s) | shards / files |",
        "|---|---:|---:|---:|---:|",
    ]
    for fe, by in rates.items():
        for w, v in by.items():
            ratio = result["shards_over_files"][fe][w]
            rows.append(f"| {fe} | {w} | {v['files']} | {v['wav_files']} | {v['shards']} | {ratio} |")
    t, wait = result["train_steps_per_s"], result["data_wait_share"]
    body = "\n".join(
        [
            "## Data path: tar shards against one file per utterance (`bench/data_speed.py --shards-only`)",
            "",
            f"{result['machine']}, {result['cores']} cores{' (--quick)' if args.quick else ''}. The same 16 kHz "
            "speech read per file (duration-bucket sampler; 16 kHz FLAC as in the shards, and 16 kHz WAV) and "
            "streamed from tar shards of 40 utterances (`hlora prepare shards`: the trainer's process reads "
            "the shards, the workers decode FLAC and compute features); audio-seconds per second the "
            "training loader delivers:",
            "",
            *rows,
            "",
            f"Whisper-base HLoRA training, 1 loader worker: per FLAC file {t['files']} steps/s, waiting for data "
            f"{wait['files']:.1%} of the time; from shards {t['shards']} steps/s, waiting {wait['shards']:.1%} "
            f"(goal: at most 5 %: {'met' if result['goal_wait_met'] else 'not met'}). On a local disk the files "
            "are not slow to open; the shards' gain is on network file systems, which this machine does not have.",
        ]
    )
    write_section("data_speed_shards", body, result)
    print(json.dumps(result))


def _report(r: dict) -> str:
    rows = ["| format | frontend | 0 workers | 1 worker | 2 workers |", "|---|---|---:|---:|---:|"]
    for fmt, by_frontend in r["loader_audio_s_per_s"].items():
        for fe, by_workers in by_frontend.items():
            rows.append(f"| {fmt} | {fe} | {by_workers['0']} | {by_workers['1']} | {by_workers['2']} |")
    t = r["train_steps_per_s"]
    return "\n".join(
        [
            "## Data path: loader throughput, waiting for data, manifest start-up (`bench/data_speed.py`)",
            "",
            f"{r['machine']}, {r['cores']} cores{' (--quick)' if r['quick'] else ''}. Audio-seconds per second the "
            "training loader delivers (read, resample to 16 kHz, features), by worker processes:",
            "",
            *rows,
            "",
            f"Whisper-base HLoRA training on this CPU (MP3 corpus): {t['0']} steps/s without workers, waiting for "
            f"data {r['data_wait_share_no_workers']:.1%} of the step; {t['1']} steps/s with 1 worker, waiting "
            f"{r['data_wait_share']:.1%}.",
            "",
            f"A 1,000,000-line manifest read, validated and bucketed: {r['manifest_1m_s']} s, peak resident "
            f"memory {r['manifest_1m_mb']} MB (the whole process).",
        ]
    )


if __name__ == "__main__":
    main()
