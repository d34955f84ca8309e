"""Decoding output: JSONL (id, lang, lang_probs, text, words) and a Kaldi `text` file, atomically."""

from __future__ import annotations

import json
from pathlib import Path

from hlora_cli.files import atomic_write
from hlora_cli.infer.runner import Report, Result


def write_results(results: list[Result], out: Path) -> list[Path]:
    rows = []
    for r in sorted(results, key=lambda r: r.id):
        row = {"id": r.id, "lang": r.lang, "lang_probs": r.lang_probs, "text": r.text}
        if r.words:
            row["words"] = [{"word": w, "start": round(a, 3), "end": round(b, 3)} for w, a, b in r.words]
        rows.append(json.dumps(row, ensure_ascii=False))
    jsonl = "".join(line + "\n" for line in rows)
    atomic_write(out, lambda p: p.write_text(jsonl, encoding="utf-8"))
    kaldi = out.with_suffix(".text")
    text = "".join(f"{r.id} {r.text}\n" for r in sorted(results, key=lambda r: r.id))
    atomic_write(kaldi, lambda p: p.write_text(text, encoding="utf-8"))
    return [out, kaldi]


def meta_path(out: Path) -> Path:
    return out.with_suffix(".meta.json")


def write_meta(report: Report, out: Path, system: dict) -> None:
    """OUT.meta.json: what decoded and how fast (read by `hlora score --systems`)."""
    meta = {
        **system,
        "utterances": len(report.results),
        "skipped": len(report.skipped),
        "audio_seconds": round(report.audio_seconds, 3),
        "wall_seconds": round(report.wall_seconds, 3),
        "rtf": round(report.rtf, 5),
    }
    text = json.dumps(meta, indent=1) + "\n"
    atomic_write(meta_path(out), lambda p: p.write_text(text, encoding="utf-8"))
