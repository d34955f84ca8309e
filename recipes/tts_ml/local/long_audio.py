"""Long recordings from the test clips, for the long-audio check of the recipe.

concat MANIFEST OUT_DIR [--seconds S] [--gap G]
    clips of one language, in manifest order, joined with G s of silence into recordings of at
    least S s: OUT_DIR/long.jsonl (reference = the clips' texts joined) and OUT_DIR/parts.json
join LONG PARTS HYP OUT
    the clip-by-clip hypotheses (a `hlora decode` JSONL of the clips) joined per recording: a
    hypothesis file for `hlora score` and also a manifest (audio = the long recording), so it can
    serve as the reference that the long-recording hypotheses are compared with
"""

from __future__ import annotations

import argparse
import json
from collections import defaultdict
from pathlib import Path

import numpy as np
import soundfile as sf

from hlora_cli.data.audio import SAMPLE_RATE, audio_info, load_audio
from hlora_cli.data.manifest import read_manifest


def concat(manifest: Path, out: Path, seconds: float, gap: float) -> None:
    by_lang = defaultdict(list)
    for u in read_manifest(manifest):
        by_lang[u.lang].append(u)
    out.mkdir(parents=True, exist_ok=True)
    silence = np.zeros(int(gap * SAMPLE_RATE), dtype=np.float32)
    rows, parts = [], {}
    for lang, utts in sorted(by_lang.items()):
        groups, current, length = [], [], 0.0
        for u in utts:
            current.append(u)
            length += (u.duration if u.duration is not None else audio_info(u.audio).duration) + gap
            if length >= seconds:
                groups.append(current)
                current, length = [], 0.0
        if current and (not groups or length >= seconds / 2):  # a short tail joins no group
            groups.append(current)
        for n, group in enumerate(groups):
            rid = f"{lang}_long_{n:02d}"
            audio = np.concatenate([x for u in group for x in (load_audio(u.audio, u.start, u.end), silence)])
            sf.write(str(out / f"{rid}.wav"), audio, SAMPLE_RATE, subtype="PCM_16")
            row = {"id": rid, "audio": f"{rid}.wav", "lang": lang, "duration": round(len(audio) / SAMPLE_RATE, 3)}
            row["text"] = " ".join(u.text for u in group)
            if all(u.text_norm is not None for u in group):
                row["text_norm"] = " ".join(u.text_norm for u in group)
            rows.append(row)
            parts[rid] = [u.id for u in group]
    (out / "long.jsonl").write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")
    (out / "parts.json").write_text(json.dumps(parts, indent=1) + "\n", encoding="utf-8")
    total = sum(r["duration"] for r in rows)
    print(f"{len(rows)} recordings, {total / 60:.1f} min, {min(r['duration'] for r in rows):.0f} s or longer")


def join(long: Path, parts_file: Path, hyp: Path, out: Path) -> None:
    audio = {u.id: u.audio for u in read_manifest(long)}
    parts = json.loads(parts_file.read_text(encoding="utf-8"))
    hyps = {r["id"]: r for r in map(json.loads, hyp.read_text(encoding="utf-8").splitlines())}
    rows = []
    for rid, ids in parts.items():
        missing = [i for i in ids if i not in hyps]
        if missing:
            raise SystemExit(f"{hyp}: no hypothesis for {', '.join(missing)}")
        lang = hyps[ids[0]]["lang"]
        rows.append({"id": rid, "audio": audio[rid], "lang": lang, "text": " ".join(hyps[i]["text"] for i in ids)})
    out.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="cmd", required=True)
    c = sub.add_parser("concat")
    c.add_argument("manifest", type=Path)
    c.add_argument("out", type=Path)
    c.add_argument("--seconds", type=float, default=60.0)
    c.add_argument("--gap", type=float, default=0.5)
    j = sub.add_parser("join")
    j.add_argument("long", type=Path)
    j.add_argument("parts", type=Path)
    j.add_argument("hyp", type=Path)
    j.add_argument("out", type=Path)
    a = p.parse_args()
    if a.cmd == "concat":
        concat(a.manifest, a.out, a.seconds, a.gap)
    else:
        join(a.long, a.parts, a.hyp, a.out)


if __name__ == "__main__":
    main()
