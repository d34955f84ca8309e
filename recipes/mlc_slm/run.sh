#!/usr/bin/env bash
# The HLoRA paper's results table (S1-S8) and its k ablation on the MLC-SLM 2025 data (English-Indian,
# French, German, Japanese, Korean; 100 h each), on mHuBERT-147, as one script. Stages:
#   0 (--smoke only) synthesise a small corpus laid out as the MLC-SLM release, and a tiny random HuBERT
#   1 import the release (and select the paper's utterances with --utt-lists)
#   2 text normalization as the paper's (character spacing for ja/ko, code-switched Latin words kept
#     whole, language-prefix tokens), BPE units
#   3 train S2 (LoRA-free, fully fine-tuned CTC), S3/S4 (LIDLoRA) and HLoRA for every k of the ablation
#     (torchrun on --ngpu GPUs)
#   4 the k ablation: score every k on dev and test (ablation.md, .json, .png)
#   5 decode dev and test: S2, S3 oracle, S4 two-stage (S2's LID), S5/S6 HLoRA k oracle / single pass,
#     S7/S8 Whisper-base/-small zero-shot (with --whisper-base / --whisper-small)
#   6 score (pooled MER as the paper's Avg, and the mean over languages)
#   7 RESULTS.md: the paper's table shape, its own numbers beside ours
# Re-running skips what is finished (an interrupted training resumes).
#   ./run.sh --data-root DIR --backbone DIR [--ngpu N] [--utt-lists DIR] [--stage N] [--stop-stage M]
#            [--ks "1 3 6 9 11"] [--k 9] [--bpe-size N] [--whisper-base DIR] [--whisper-small DIR]
#            [--exp DIR] [--smoke]
# --data-root holds the release's sets as train/, dev/ and test/ (symlinks to the unpacked folders).
# --utt-lists DIR: DIR/train/*, DIR/dev/*, DIR/test/* are id lists (the first field of a line counts, so
# Kaldi text, wav.scp or utt2spk files serve); the paper's are in its repository (hlora_readme.md).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
shared=${SHARED:-$root/../shared}
stage=1; stop_stage=7
data_root=""; backbone=""; utt_lists=""; ngpu=0; ks="1 3 6 9 11"; k=9; bpe_size=1000
whisper_base=""; whisper_small=""; smoke=false
langs="en-IN,fr,de,ja,ko"
exp=${EXP:-$root/exp/mlc_slm}
# shellcheck source=../utils/stages.sh
. "$root/recipes/utils/stages.sh"
recipe_options stage stop_stage data_root backbone utt_lists ngpu ks k bpe_size whisper_base whisper_small exp smoke
preset_smoke() {
  stage=0; exp=$root/exp/mlc_slm_smoke; bpe_size=30; whisper_base=${HLORA_CACHE:-$HOME/.cache/hlora}/whisper-base
}
parse_options "$@"
if $smoke; then data_root=$exp/mlc_synth; backbone=$exp/tiny_hubert; fi
[[ -n $data_root && -n $backbone ]] || { echo "give --data-root DIR and --backbone DIR (or --smoke)" >&2; exit 2; }
[[ $ngpu =~ ^[0-9]+$ ]] || { echo "--ngpu $ngpu: expected a whole number" >&2; exit 2; }
[[ " $ks " == *" $k "* ]] || { echo "--k $k must be one of --ks \"$ks\" (S5/S6 use that ablation run)" >&2; exit 2; }
bin=$root/.venv/bin
hlora=$bin/hlora py=$bin/python
mkdir -p "$exp"

if want 0 && $smoke; then
  log 0 "synthesise a corpus in the MLC-SLM release layout, and a tiny random 12-layer HuBERT"
  voice=(--jtalk-voice "$shared/data/voices/nitech_jp_atr503_m001.htsvoice")
  mkdir -p "$exp/text"
  args=()
  for l in en fr de ja ko; do
    head -n 40 "$shared/data/text/$l/dev.txt" > "$exp/text/$l.txt"; args+=(--text "$l=$exp/text/$l.txt")
  done
  for s in train dev test; do
    case $s in train) n=16 split=train seed=0 ;; dev) n=4 split=train seed=1 ;; test) n=4 split=test seed=2 ;; esac
    "$hlora" prepare synth "${args[@]}" --split $split --per-language $n --seed $seed "${voice[@]}" -o "$exp/clips/$s"
    rm -rf "$data_root/$s"
    "$py" "$here/local/synth_layout.py" "$exp/clips/$s/manifest.jsonl" "$data_root/$s" --seed $seed
  done
  [[ -f $backbone/config.json ]] || "$py" "$here/local/tiny_hubert.py" "$backbone"
fi

if want 1; then
  log 1 "import $data_root/{train,dev,test} (languages $langs)"
  mkdir -p "$exp/data"
  for s in train dev test; do
    if [[ -n $utt_lists ]]; then
      "$hlora" prepare mlc-slm "$data_root/$s" --languages "$langs" -o "$exp/data/$s.all.jsonl"
      lists=(); for f in "$utt_lists/$s"/*; do lists+=(--ids "$f"); done
      "$hlora" prepare subset "$exp/data/$s.all.jsonl" "${lists[@]}" -o "$exp/data/$s.raw.jsonl"
    else
      "$hlora" prepare mlc-slm "$data_root/$s" --languages "$langs" -o "$exp/data/$s.raw.jsonl"
    fi
  done
fi

if want 2; then
  log 2 "normalize, BPE units ($bpe_size pieces per language; ja/ko characters)"
  for s in train dev test; do "$hlora" normalize "$exp/data/$s.raw.jsonl" -o "$exp/data/$s.jsonl"; done
  "$hlora" prepare vocab "$exp/data/train.jsonl" -o "$exp/data/vocab.json" --prefix-tokens --unit bpe \
    --bpe-size "$bpe_size" --coverage "$exp/data/dev.jsonl" --coverage "$exp/data/test.jsonl"
fi

# conf/NAME.yaml with the data, the backbone, gradient accumulation for 8/ngpu (the same updates on any
# number of GPUs) and, for --smoke, a few steps: written to EXP/conf/NAME.yaml, used by train and ablate.
conf() {
  local name=$1 extra accum=1
  (( ngpu > 0 && ngpu < 8 )) && accum=$(( 8 / ngpu ))
  extra="{train: $exp/data/train.jsonl, dev: $exp/data/dev.jsonl, vocab: $exp/data/vocab.json, backbone: $backbone"
  extra+=", grad_accum: $accum"
  $smoke && extra+=", max_steps: 4, warmup_steps: 1, batch_seconds: 40, eval_every: 2, save_every: 2"
  extra+="}"
  mkdir -p "$exp/conf"
  "$py" -c 'import sys, yaml
c = yaml.safe_load(open(sys.argv[1])); c.update(yaml.safe_load(sys.argv[3]))
open(sys.argv[2], "w").write(yaml.safe_dump(c, sort_keys=False))' "$here/conf/$name.yaml" "$exp/conf/$name.yaml" "$extra"
}
launch() {  # hlora train under torchrun on --ngpu GPUs (plain on the CPU)
  if (( ngpu > 0 )); then "$bin/torchrun" --standalone --nproc_per_node "$ngpu" -m hlora_cli train "$@"
  else "$hlora" train "$@"; fi
}
train_once() {  # train_once DIR CONF FLAGS...: train, resume an interrupted run, or skip a finished one
  local dir=$1 name=$2; shift 2
  if [[ -f $dir/.trained ]]; then echo "$dir: trained before, skipped"; return; fi
  if [[ -f $dir/checkpoint.pt ]]; then launch --out "$dir" --resume
  else launch --config "$exp/conf/$name.yaml" --out "$dir" --overwrite "$@"; fi
  touch "$dir/.trained"
}

if want 3; then
  log 3 "train S2 ctc, S3/S4 LIDLoRA, HLoRA k in $ks ($ngpu GPU(s))"
  conf ctc; conf lora
  train_once "$exp/ctc" ctc
  train_once "$exp/lidlora" lora --model-type lidlora
  for k2 in $ks; do train_once "$exp/ablate/k$k2" lora --model-type hlora --k "$k2"; done
fi

if want 4; then
  log 4 "the k ablation: every k on dev and test"
  "$hlora" ablate --k "${ks// /,}" --config "$exp/conf/lora.yaml" --test "$exp/data/test.jsonl" -o "$exp/ablate"
fi

if want 5; then
  log 5 "decode dev and test with every system"
  hl=$exp/ablate/k$k/best
  for s in dev test; do
    in=$exp/data/$s.jsonl out=$exp/decode_$s
    mkdir -p "$out"
    "$hlora" decode "$in" --model "$exp/ctc/best" -o "$out/s2_ctc.jsonl"
    "$hlora" decode "$in" --model "$exp/lidlora/best" --mode oracle -o "$out/s3_lidlora_oracle.jsonl"
    "$hlora" decode "$in" --model "$exp/lidlora/best" --mode two-stage --lid-model "$exp/ctc/best" \
      -o "$out/s4_two_stage.jsonl"
    "$hlora" decode "$in" --model "$hl" --mode oracle -o "$out/s5_hlora_oracle.jsonl"
    "$hlora" decode "$in" --model "$hl" -o "$out/s6_hlora.jsonl"
    [[ -n $whisper_base ]] && "$hlora" decode "$in" --whisper "$whisper_base" -o "$out/s7_whisper_base.jsonl"
    [[ -n $whisper_small ]] && "$hlora" decode "$in" --whisper "$whisper_small" -o "$out/s8_whisper_small.jsonl"
  done
fi

if want 6; then
  log 6 "score (pooled MER as the paper's Avg, and the mean over languages)"
  for s in dev test; do
    out=$exp/decode_$s files=() names=()
    for sys in s2_ctc s3_lidlora_oracle s4_two_stage s5_hlora_oracle s6_hlora s7_whisper_base s8_whisper_small; do
      [[ -f $out/$sys.jsonl ]] && { files+=("$out/$sys.jsonl"); names+=("$sys"); }
    done
    "$hlora" score "$exp/data/$s.jsonl" "${files[@]}" --systems "$(IFS=,; echo "${names[*]}")" --markdown \
      --json "$out/scores.json" > "$out/table.md"
    cat "$out/table.md"
  done
fi

if want 7; then
  log 7 "RESULTS.md"
  results=$here/RESULTS.md
  note=""
  if $smoke; then
    results=$exp/RESULTS.md
    note="Smoke run: a synthesised corpus in the MLC-SLM layout and a tiny random HuBERT; the numbers only show that every stage runs."
  fi
  "$py" "$here/local/results.py" "$exp" "$results" --k "$k" --ks "$ks" --note "$note" \
    --command "recipes/mlc_slm/run.sh --data-root $data_root --backbone $backbone --ngpu $ngpu --ks \"$ks\" --k $k --bpe-size $bpe_size"
  cat "$results"
fi
