"""Per-language KenLM n-gram models from normalized text, with KenLM's own lmplz and build_binary."""

from __future__ import annotations

import os
import shutil
import subprocess
from collections import defaultdict
from pathlib import Path

from hlora_cli.data.manifest import read_manifest
from hlora_cli.data.vocab import norm_text
from hlora_cli.errors import HloraError
from hlora_cli.files import atomic_write
from text_normalization.registry import base_language
from text_normalization.rules import strip_language_prefix

TOOLS = Path(__file__).resolve().parents[2] / "tools" / "kenlm" / "bin"


def kenlm_tool(name: str) -> str:
    """Path of lmplz/build_binary: $KENLM_BIN, the repo's tools/kenlm/bin (`make kenlm`), or PATH."""
    for folder in (os.environ.get("KENLM_BIN"), str(TOOLS)):
        if folder and (Path(folder) / name).exists():
            return str(Path(folder) / name)
    found = shutil.which(name)
    if found is None:
        raise HloraError(
            f"KenLM's {name} not found: no package ships it; run `make kenlm` (builds it from the kenlm source "
            "distribution on PyPI into tools/kenlm/bin) or set KENLM_BIN"
        )
    return found


def texts_by_language(manifests: list[Path]) -> dict[str, list[str]]:
    """Normalized lines per base language (prefix tokens removed)."""
    out: dict[str, list[str]] = defaultdict(list)
    for m in manifests:
        for u in read_manifest(m):
            line = strip_language_prefix(norm_text(u)).strip()
            if line:
                out[base_language(u.lang)].append(line)
    return out


def build_lm(
    lines: list[str], out_prefix: Path, order: int = 3, prune: list[int] | None = None, binary: bool = True
) -> list[Path]:
    """OUT.arpa (and OUT.bin) from one language's normalized lines."""
    if not lines:
        raise HloraError(f"{out_prefix}: no text to build a language model from")
    cmd = [kenlm_tool("lmplz"), "-o", str(order), "--discount_fallback", "-S", "20%", "-T", str(out_prefix.parent)]
    if prune:
        cmd += ["--prune", *map(str, prune)]
    out_prefix.parent.mkdir(parents=True, exist_ok=True)
    arpa = out_prefix.with_suffix(".arpa")
    r = subprocess.run(cmd, input="\n".join(lines) + "\n", capture_output=True, text=True)
    if r.returncode != 0:
        raise HloraError(
            f"lmplz failed for {out_prefix}: {r.stderr.strip().splitlines()[-1] if r.stderr else r.returncode}"
        )
    atomic_write(arpa, lambda p: p.write_text(r.stdout, encoding="utf-8"))
    written = [arpa]
    if binary:
        binary_path = out_prefix.with_suffix(".bin")

        def write_binary(p: Path) -> None:
            b = subprocess.run([kenlm_tool("build_binary"), str(arpa), str(p)], capture_output=True, text=True)
            if b.returncode != 0:
                raise HloraError(f"build_binary failed for {arpa}: {b.stderr.strip()[-300:]}")

        atomic_write(binary_path, write_binary)
        written.append(binary_path)
    return written


def lm_unigrams(lm_path: str) -> set[str] | None:
    """The LM's vocabulary, which beam search needs to tell a word being spelled from an unknown
    one. pyctcdecode reads it from an ARPA file itself, but a KenLM binary does not hold it in a
    form it can read: for `X.bin` it is taken from `X.arpa` beside it (`hlora lm build` writes
    both). Without one, every partial word would score as out of vocabulary, so that is an error."""
    from pyctcdecode.language_model import load_unigram_set_from_arpa

    path = Path(lm_path)
    if path.suffix == ".arpa":
        return None  # pyctcdecode reads it
    arpa = path.with_suffix(".arpa")
    if not arpa.is_file():
        raise HloraError(
            f"{path}: a KenLM binary needs its word list for beam search: put the ARPA it was built from "
            f"beside it as {arpa.name} (hlora lm build writes both), or give the .arpa"
        )
    return load_unigram_set_from_arpa(str(arpa))
