"""RESULTS files of recipes/tts_ml, from the tables its stages wrote and the options it ran with
(EXP/options.json, written by run.sh).

results.py main EXP OUT      stage 8: RESULTS.md (the HLoRA systems, real clips, k ablation, long
                             audio, and the experts' systems where stage 7 ran)
results.py seq2seq EXP OUT   stage 9: RESULTS_seq2seq.md (the whole Whisper)
results.py export EXP OUT    stage 10: RESULTS_export.md (the experts exported as Whisper models)

OUT is written whole or not at all (a temporary file renamed in place)."""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path


def table(path: Path) -> str:
    """A stage's table (or manifest); a missing one is an error naming it (the stage that writes it
    did not run). The echo blocks this replaces wrote a RESULTS file without it."""
    if not path.is_file():
        raise SystemExit(f"{path}: no such table; run the stage that writes it first")
    return path.read_text(encoding="utf-8").rstrip("\n")


def section(heading: str, path: Path) -> list[str]:
    """`## heading` over the table at `path`, a blank line before each."""
    return ["", f"## {heading}", "", table(path)]


def main_results(exp: Path, o: dict) -> list[str]:
    n_langs = len(o["langs"].split())
    real = sum(1 for line in table(exp / "real.jsonl").splitlines() if line.strip())
    lines = [
        "# Results: recipes/tts_ml",
        "",
        f"Backbone: `{o['backbone']}`; languages: {o['langs']}; per language {o['train']} train / {o['dev']} dev / "
        f"{o['test']} test",
        f"utterances (test voices never used in training); {o['steps']} training steps per model; main k = "
        f"{o['main_k']}.",
        "MER: CER for ja and ko, WER otherwise (after text_normalization); RTF: decode wall time / audio.",
        f'Reproduce: `recipes/tts_ml/run.sh --langs "{o["langs"]}" --train {o["train"]} --dev {o["dev"]} --test '
        f"{o['test']}",
        f'--ks "{o["ks"]}" --main-k {o["main_k"]} --steps {o["steps"]} --batch-seconds {o["batch_seconds"]} '
        f"--lr {o['lr']} --head-lr {o['head_lr']}",
        f"--ctc-lr {o['ctc_lr']} --bpe-size {o['bpe_size']}`. k counts the shared lower layers (1..k shared LoRA, "
        "LID after",
        "layer k, k+1..6 per language), as the HLoRA paper defines it.",
        *section("TTS test set", exp / "decode_test" / "table.md"),
        *section(
            f"Real clips (../shared/data/real) in the trained languages ({real} of 20;\n"
            "models trained on synthetic speech)",
            exp / "decode_real" / "table.md",
        ),
        *section("Ablation over k (HLoRA, single pass; k = shared lower layers)", exp / "ablate" / "ablation.md"),
        *section(
            "Long audio: test clips joined per language (0.5 s gaps) into recordings of 60 s or more",
            exp / "long" / "table.md",
        ),
    ]
    experts = exp / "decode_test" / "experts"
    if (experts / "table.md").is_file():
        lines += [
            "",
            f"## LoRA language experts (TTS test set): experts (rank {o['expert_rank']}), MoLE, students (rank 256)",
            "",
            f"Experts: {o['steps']} steps each on their language's rows; MoLE: {o['fuse_steps']} steps (fusion "
            "weights and",
            f"router only, lr 1e-2); students: {o['student_steps']} steps. Adding a language: the MoLE of "
            f"{n_langs - 1}",
            "languages' experts, then the last language's expert fused in with --init-from.",
            "",
            table(experts / "table_mer.md"),
            "",
            "The same systems by CER:",
            "",
            table(experts / "table_cer.md"),
            "",
            table(experts / "add_language.md"),
        ]
    return lines


def seq2seq_results(exp: Path, o: dict) -> list[str]:
    decode = exp / "seq2seq" / "decode"
    steps = int(o["s2s_steps"])
    return [
        "# Results: recipes/tts_ml stage 9, the whole Whisper (seq2seq)",
        "",
        f"Backbone: `{o['backbone']}` (encoder and decoder, LoRA in both); languages: {o['langs']}; encoder input:",
        f"{o['s2s_input']}; {steps} steps per model (MoLE: {steps // 3 + 1}, fusion weights and router only);",
        f"experts rank {o['expert_rank']}, shared LoRA rank 8, student rank 256; MoLE L1 = {o['main_l1']} (layers "
        "1..L1 fuse the",
        "experts, the router reads layer L1, the deeper layers and the decoder are the routed language's expert).",
        "Every fine-tuned system is single pass: the decoder is forced to the routed language's token.",
        "MER: CER for ja and ko, WER otherwise (after text_normalization); RTF: decode wall time / audio.",
        f'Reproduce: `recipes/tts_ml/run.sh --exp {exp} --langs "{o["langs"]}" --stage 9 --stop-stage 9',
        f"--s2s-steps {steps} --s2s-lr {o['s2s_lr']} --s2s-input {o['s2s_input']} --batch-seconds "
        f"{o['batch_seconds']}` (after stages 1-2).",
        *section("TTS test set", decode / "test" / "table.md"),
        *section(
            "Real clips (../shared/data/real) in these languages: did fine-tuning on synthetic speech hurt?",
            decode / "real" / "table.md",
        ),
        *section("Repetition loops: Whisper-base zero-shot on the TTS test set", decode / "test" / "loops.md"),
    ]


def export_results(exp: Path, o: dict) -> list[str]:
    decode = exp / "seq2seq" / "decode"
    return [
        "# Results: recipes/tts_ml stage 10, the seq2seq experts exported as transformers Whisper models",
        "",
        "`hlora export hf MODEL --lang LANG` folds every LoRA the language runs (encoder and decoder) into a",
        "WhisperForConditionalGeneration whose generation config forces the language; `hlora decode --whisper`",
        "decodes it in that language (no detection), on transformers' 30 s windows. Models: stage 9's experts",
        f"(encoder input: {o['s2s_input']}), greedy, the same token budget. MER: CER for ja and ko, WER otherwise.",
        "CTranslate2 rows (where `pip install ctranslate2` was done): local/ct2_decode.py converts each export.",
        f'Reproduce: `recipes/tts_ml/run.sh --exp {exp} --langs "{o["langs"]}" --stage 10 --stop-stage 10',
        f"--s2s-input {o['s2s_input']}` (after stage 9).",
        *section("TTS test set", decode / "test" / "export.md"),
        *section("Real clips", decode / "real" / "export.md"),
    ]


KINDS = {"main": main_results, "seq2seq": seq2seq_results, "export": export_results}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("kind", choices=sorted(KINDS))
    p.add_argument("exp", type=Path, help="the recipe's experiment directory (holds options.json)")
    p.add_argument("out", type=Path, help="the RESULTS file to write")
    args = p.parse_args()
    options = json.loads((args.exp / "options.json").read_text(encoding="utf-8"))
    text = "\n".join(KINDS[args.kind](args.exp, options)) + "\n"
    tmp = args.out.with_name(args.out.name + ".tmp")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, args.out)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
