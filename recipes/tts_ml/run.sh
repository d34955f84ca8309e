#!/usr/bin/env bash
# Multilingual TTS recipe (ESPnet-style stages): real UD sentences spoken by espeak-ng (en de fr es pt ko)
# and Open JTalk (ja); the HLoRA paper's systems on one encoder: the LoRA-free fully fine-tuned ctc model
# (S2), a shared-LoRA model, LIDLoRA oracle (S3) and two-stage (S4, with the ctc or the shared-LoRA model
# as first stage), HLoRA for each k (k = shared lower layers; S5 oracle, S6 single pass) with hard, soft
# and top-2 routing, BPE against characters, the pooled against the per-frame LID head; LID, KenLM,
# scoring, the k ablation; the same models on the real clips next to Whisper-base zero-shot; long
# recordings (test clips joined) decoded in windows; the LoRA-language-experts systems (an expert per
# language, MoLE for each L1, the distilled student with layer-wise / logits-only / no KD, adding a
# language to a MoLE model against training HLoRA again); RESULTS.md at the end; stage 9: the same
# experts systems on the whole Whisper (seq2seq: its own decoder with LoRA) against Whisper zero-shot,
# written to RESULTS_seq2seq.md; stage 10: those experts exported as transformers Whisper models and
# decoded again (RESULTS_export.md). Calls the hlora CLI, local/long_audio.py to join clips,
# local/ct2_decode.py (stage 10, where ctranslate2 is installed) and local/results.py (the RESULTS
# files); options and stages through ../utils/stages.sh.
#   ./run.sh [--stage N] [--stop-stage M] [--backbone DIR] [--langs "en de ..."] [--train N] [--dev N]
#            [--test N] [--ks "1 2 3 4 5"] [--main-k K] [--steps N] [--batch-seconds S] [--lr LR]
#            [--head-lr LR] [--ctc-lr LR] [--bpe-size N] [--l1s "1 2 3 4 5"] [--main-l1 L1]
#            [--expert-rank R] [--fuse-steps N] [--student-steps N] [--batching sorted|mixed]
#            [--s2s-steps N] [--s2s-lr LR] [--s2s-input 30s|true-length] [--smoke]
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
shared=${SHARED:-$root/../shared}
stage=1; stop_stage=8
langs="en de fr es pt ko ja"; train=200; dev=15; test=40; ks="1 2 3 4 5"; main_k=3; steps=800; batch_seconds=16
lr=5e-4; head_lr=5e-3; ctc_lr=1e-4; bpe_size=200
l1s="1 2 3 4 5"; main_l1=3; expert_rank=64; fuse_steps=""; student_steps=""; batching=sorted
s2s_steps=60; s2s_lr=5e-4; s2s_input=true-length; smoke=false
backbone=${BACKBONE:-${HLORA_CACHE:-$HOME/.cache/hlora}/whisper-base}
exp=${EXP:-$root/exp/tts_ml}
# shellcheck source=../utils/stages.sh
. "$root/recipes/utils/stages.sh"
recipe_options stage stop_stage backbone langs train dev test ks main_k steps exp batch_seconds lr head_lr ctc_lr \
  bpe_size l1s main_l1 expert_rank fuse_steps student_steps batching s2s_steps s2s_lr s2s_input smoke
preset_smoke() {
  langs="en de ja"; train=6; dev=2; test=3; ks="1 3"; main_k=3; steps=4; batch_seconds=30; bpe_size=30
  l1s="1 3"; main_l1=3; expert_rank=4; exp=$root/exp/tts_ml_smoke; s2s_steps=2
}
parse_options "$@"
hlora=$root/.venv/bin/hlora py=$root/.venv/bin/python
fuse_steps=${fuse_steps:-$(( steps / 3 + 1 ))}  # only fusion weights and router train
student_steps=${student_steps:-$steps}  # the student starts from the experts' average
mkdir -p "$exp"
write_options "$exp/options.json"  # what local/results.py writes RESULTS from
results() {  # results KIND FILE: local/results.py writes FILE here (a smoke run's in $exp)
  local out=$here/$2
  if [[ $exp == *smoke* ]]; then out=$exp/$2; fi
  "$py" "$here/local/results.py" "$1" "$exp" "$out"
}
texts() {  # texts SPLIT: --text LANG=FILE for every language (train/dev from dev.txt, test from test.txt)
  for l in $langs; do printf -- '--text %s=%s ' "$l" "$exp/text/$l.$1.txt"; done
}

if want 1; then
  log 1 "synthesise (train/dev from dev.txt, test from test.txt with voices never used in training)"
  mkdir -p "$exp/text"
  for l in $langs; do
    src=$shared/data/text/$l
    n=$(wc -l < "$src/dev.txt"); cut=$(( n * 85 / 100 ))
    head -n "$cut" "$src/dev.txt" > "$exp/text/$l.train.txt"
    tail -n +"$(( cut + 1 ))" "$src/dev.txt" > "$exp/text/$l.dev.txt"
    cp "$src/test.txt" "$exp/text/$l.test.txt"
  done
  voice=(--jtalk-voice "$shared/data/voices/nitech_jp_atr503_m001.htsvoice")
  # shellcheck disable=SC2046
  "$hlora" prepare synth $(texts train) --split train --per-language "$train" --seed 0 "${voice[@]}" -o "$exp/wav/train"
  # shellcheck disable=SC2046
  "$hlora" prepare synth $(texts dev) --split train --per-language "$dev" --seed 1 "${voice[@]}" -o "$exp/wav/dev"
  # shellcheck disable=SC2046
  "$hlora" prepare synth $(texts test) --split test --per-language "$test" --seed 2 "${voice[@]}" -o "$exp/wav/test"
fi

if want 2; then
  log 2 "normalize, token inventories"
  for s in train dev test; do "$hlora" normalize "$exp/wav/$s/manifest.jsonl" -o "$exp/$s.jsonl"; done
  "$hlora" prepare vocab "$exp/train.jsonl" -o "$exp/vocab.json" --prefix-tokens \
    --coverage "$exp/dev.jsonl" --coverage "$exp/test.jsonl"
  "$hlora" prepare vocab "$exp/train.jsonl" -o "$exp/vocab_bpe.json" --prefix-tokens --unit bpe --bpe-size "$bpe_size"
fi

cat > "$exp/run.yaml" <<YAML
backbone: $backbone
train: $exp/train.jsonl
dev: $exp/dev.jsonl
vocab: $exp/vocab.json
lora_rank: 8
lora_alpha: 16
lid_weight: 1.0
lr: $lr
head_lr: $head_lr
warmup_steps: $(( steps / 10 + 1 ))
max_steps: $steps
batch_seconds: $batch_seconds
batching: $batching
max_duration: $batch_seconds
eval_every: $(( steps / 4 + 1 ))
save_every: $(( steps / 4 + 1 ))
metric: cer
YAML

train_once() {  # train_once NAME FLAGS...: train (or resume, or skip when finished) one system
  local name=$1; shift
  if [[ -f $exp/$name/best/config.json ]]; then return; fi
  if [[ -f $exp/$name/checkpoint.pt ]]; then "$hlora" train --out "$exp/$name" --resume
  else "$hlora" train --config "$exp/run.yaml" --out "$exp/$name" --overwrite "$@"; fi
}

if want 3; then
  log 3 "train ctc (full fine-tune), shared-LoRA, LIDLoRA, HLoRA for k in $ks (the ablation), BPE and frame-LID HLoRA"
  # The LoRA-free model fine-tunes every encoder weight: at the LoRA rate it would leave the pretrained encoder.
  train_once ctc --model-type ctc --lr "$ctc_lr"
  train_once shared_lora --model-type shared-lora
  train_once lidlora --model-type lidlora
  "$hlora" ablate --k "${ks// /,}" --config "$exp/run.yaml" --test "$exp/test.jsonl" -o "$exp/ablate"
  train_once hlora_bpe --model-type hlora --k "$main_k" --vocab "$exp/vocab_bpe.json"
  train_once hlora_frame --model-type hlora --k "$main_k" --lid-head frame
fi

decode_all() {  # decode_all INPUT OUTDIR: every system on one set
  local in=$1 out=$2 hl=$exp/ablate/k$main_k/best lms
  lms=$(for l in $langs; do printf -- '--lm %s=%s ' "$l" "$exp/lm/$l.bin"; done)
  mkdir -p "$out"
  "$hlora" decode "$in" --model "$exp/ctc/best" -o "$out/ctc.jsonl"
  "$hlora" decode "$in" --model "$exp/shared_lora/best" -o "$out/shared_lora.jsonl"
  "$hlora" decode "$in" --model "$exp/lidlora/best" --mode oracle -o "$out/lidlora_oracle.jsonl"
  for first in ctc shared_lora; do
    "$hlora" decode "$in" --model "$exp/lidlora/best" --mode two-stage --lid-model "$exp/$first/best" \
      -o "$out/two_stage_$first.jsonl"
  done
  for k in $ks; do
    "$hlora" decode "$in" --model "$exp/ablate/k$k/best" -o "$out/hlora_k$k.jsonl"
  done
  "$hlora" decode "$in" --model "$hl" --mode oracle -o "$out/hlora_oracle.jsonl"
  for routing in soft top2; do
    "$hlora" decode "$in" --model "$hl" --routing $routing -o "$out/hlora_$routing.jsonl"
  done
  # shellcheck disable=SC2086
  "$hlora" decode "$in" --model "$hl" $lms -o "$out/hlora_lm.jsonl"
  "$hlora" decode "$in" --model "$exp/hlora_bpe/best" -o "$out/hlora_bpe.jsonl"
  # shellcheck disable=SC2086
  "$hlora" decode "$in" --model "$exp/hlora_bpe/best" $lms -o "$out/hlora_bpe_lm.jsonl"
  "$hlora" decode "$in" --model "$exp/hlora_frame/best" -o "$out/hlora_frame.jsonl"
  "$hlora" decode "$in" --whisper "$backbone" -o "$out/whisper.jsonl"
}
systems() {  # systems OUTDIR REF: the score table, systems as rows
  local out=$1 ref=$2 names files=() k=$main_k
  names="S2 ctc (LoRA-free full fine-tune),shared-LoRA,S3 LIDLoRA oracle,S4 two-stage (ctc LID),two-stage (shared-LoRA LID)"
  files=("$out/ctc.jsonl" "$out/shared_lora.jsonl" "$out/lidlora_oracle.jsonl" "$out/two_stage_ctc.jsonl"
    "$out/two_stage_shared_lora.jsonl")
  for k2 in $ks; do names+=",HLoRA k=$k2 single (hard)"; files+=("$out/hlora_k$k2.jsonl"); done
  names+=",S5 HLoRA k=$k oracle,HLoRA k=$k soft,HLoRA k=$k top2,HLoRA k=$k + KenLM,HLoRA k=$k BPE"
  names+=",HLoRA k=$k BPE + KenLM,HLoRA k=$k frame LID head,Whisper-base zero-shot"
  files+=("$out/hlora_oracle.jsonl" "$out/hlora_soft.jsonl" "$out/hlora_top2.jsonl" "$out/hlora_lm.jsonl"
    "$out/hlora_bpe.jsonl" "$out/hlora_bpe_lm.jsonl" "$out/hlora_frame.jsonl" "$out/whisper.jsonl")
  "$hlora" score "$ref" "${files[@]}" --systems "$names" --markdown --json "$out/scores.json"
}

if want 4; then
  log 4 "LID, KenLM per language, decode every system on the TTS test set, score"
  "$hlora" lid "$exp/test.jsonl" --model "$exp/ablate/k$main_k/best" -o "$exp/decode_test/lid.jsonl" \
    --plot "$exp/decode_test/lid.png"
  "$hlora" lm build "$exp/train.jsonl" -o "$exp/lm" --order 3
  decode_all "$exp/test.jsonl" "$exp/decode_test"
  systems "$exp/decode_test" "$exp/test.jsonl" > "$exp/decode_test/table.md"
  cat "$exp/decode_test/table.md"
fi

if want 5; then
  log 5 "the same systems on the real clips (../shared/data/real) in the trained languages"
  "$hlora" prepare subset "$shared/data/real/manifest.jsonl" --languages "${langs// /,}" -o "$exp/real.jsonl"
  decode_all "$exp/real.jsonl" "$exp/decode_real"
  systems "$exp/decode_real" "$exp/real.jsonl" > "$exp/decode_real/table.md"
  cat "$exp/decode_real/table.md"
fi

if want 6; then
  log 6 "long audio: the test clips joined per language into recordings of >= 60 s, decoded in windows"
  long=$exp/long hl=$exp/ablate/k$main_k/best
  "$py" "$here/local/long_audio.py" concat "$exp/test.jsonl" "$long" --seconds 60
  "$hlora" decode "$long/long.jsonl" --model "$hl" -o "$long/windows.jsonl"
  "$py" "$here/local/long_audio.py" join "$long/long.jsonl" "$long/parts.json" "$exp/decode_test/hlora_k$main_k.jsonl" \
    "$long/clips.jsonl"
  {
    "$hlora" score "$long/long.jsonl" "$long/windows.jsonl" "$long/clips.jsonl" --markdown \
      --systems "HLoRA k=$main_k: recordings in 25 s windows,HLoRA k=$main_k: clip by clip (joined)"
    echo
    echo "Windowed output scored against the clip-by-clip output as reference (0 = the same words):"
    echo
    "$hlora" score "$long/clips.jsonl" "$long/windows.jsonl" --markdown --systems "windows vs clips"
  } > "$long/table.md"
  cat "$long/table.md"
fi

# The experts' stage trains from experts.yaml: run.yaml's schedule without the model's own settings
# (backbone, vocabulary and LoRA come from the experts for fuse and distill).
grep -v -E '^(backbone|vocab|lora_rank|lora_alpha):' "$exp/run.yaml" > "$exp/experts.yaml"
timed() {  # timed NAME COMMAND...: run it, and append NAME and its wall seconds to times.tsv (not when skipped)
  local name=$1 t0; shift; t0=$(date +%s)
  if [[ -f $exp/$name/best/config.json ]]; then return; fi
  "$@"; printf '%s\t%s\n' "$name" "$(( $(date +%s) - t0 ))" >> "$exp/times.tsv"
}
expert() {  # expert LANG: one language's LoRA in every layer, on its rows of the multilingual manifest
  if [[ -f $exp/expert_$1/best/config.json ]]; then return; fi
  "$hlora" train --config "$exp/run.yaml" --model-type expert --languages "$1" --lora-rank "$expert_rank" \
    --lora-alpha $(( 2 * expert_rank )) --out "$exp/expert_$1" --overwrite
}
fuse() {  # fuse NAME L1 LANGS [FLAGS]: a MoLE model of those languages' experts
  local name=$1 l1=$2 ls=$3 dirs=(); shift 3
  if [[ -f $exp/$name/best/config.json ]]; then return; fi
  for l in $ls; do dirs+=("$exp/expert_$l/best"); done
  "$hlora" fuse "${dirs[@]}" --config "$exp/experts.yaml" --l1 "$l1" --max-steps "$fuse_steps" \
    --warmup-steps $(( fuse_steps / 10 + 1 )) --lr 1e-2 --out "$exp/$name" --overwrite "$@"
}
distill() {  # distill NAME KD: the student of every expert
  local name=$1 dirs=()
  if [[ -f $exp/$name/best/config.json ]]; then return; fi
  for l in $langs; do dirs+=("$exp/expert_$l/best"); done
  "$hlora" distill "${dirs[@]}" --config "$exp/experts.yaml" --kd "$2" --lora-alpha 512 --max-steps "$student_steps" \
    --warmup-steps $(( student_steps / 10 + 1 )) --out "$exp/$name" --overwrite
}

decode_experts() {  # decode_experts IN OUTDIR MODELS: each expert (MODELS/expert_LANG/best) on its language's
  local in=$1 o=$2 models=$3 name  # utterances of IN, joined into OUTDIR/experts.jsonl (the language given)
  name=$(basename "$in" .jsonl)
  : > "$o/experts.jsonl"
  for l in $langs; do
    "$hlora" prepare subset "$in" --languages "$l" -o "$o/$name.$l.jsonl"
    "$hlora" decode "$o/$name.$l.jsonl" --model "$models/expert_$l/best" -o "$o/expert_$l.jsonl"
    cat "$o/expert_$l.jsonl" >> "$o/experts.jsonl"
  done
}

if want 7; then
  log 7 "LoRA language experts: experts, MoLE for L1 in $l1s, students (layerwise, logits, none), adding a language"
  read -r -a all <<< "$langs"; new=${all[-1]}; old="${all[*]:0:${#all[@]}-1}"
  # The timed runs first (experts, HLoRA from scratch, adding a language), one after another.
  for l in $langs; do timed "expert_$l" expert "$l"; done
  timed hlora_scratch train_once hlora_scratch --model-type hlora --k "$main_k"
  # Adding a language: the MoLE of the others, then the new expert fused in with --init-from,
  # against HLoRA trained again from scratch on every language.
  for s in train dev; do  # the corpus without the new language
    "$hlora" prepare subset "$exp/$s.jsonl" --languages "${old// /,}" -o "$exp/${s}_without_new.jsonl"
  done
  fuse mole_without_new "$main_l1" "$old" --train "$exp/train_without_new.jsonl" --dev "$exp/dev_without_new.jsonl"
  timed mole_add_new fuse mole_add_new "$main_l1" "$langs" --init-from "$exp/mole_without_new/best"
  train_once shared_lora --model-type shared-lora  # (stage 3's, when it ran)
  for l1 in $l1s; do fuse "mole_l1_$l1" "$l1" "$langs"; done
  for kd in layerwise logits none; do distill "student_$kd" "$kd"; done
  out=$exp/decode_test/experts; mkdir -p "$out"
  decode_experts "$exp/test.jsonl" "$out" "$exp"
  "$hlora" decode "$exp/test.jsonl" --model "$exp/shared_lora/best" -o "$out/shared_lora.jsonl"
  "$hlora" decode "$exp/test.jsonl" --model "$exp/hlora_scratch/best" -o "$out/hlora.jsonl"
  names="shared-LoRA,HLoRA k=$main_k single pass,experts (language given)"
  files=("$out/shared_lora.jsonl" "$out/hlora.jsonl" "$out/experts.jsonl")
  for l1 in $l1s; do
    "$hlora" decode "$exp/test.jsonl" --model "$exp/mole_l1_$l1/best" -o "$out/mole_l1_$l1.jsonl"
    "$hlora" decode "$exp/test.jsonl" --model "$exp/mole_l1_$l1/best" --mode oracle -o "$out/mole_l1_${l1}_aware.jsonl"
    names+=",MoLE L1=$l1 agnostic (router),MoLE L1=$l1 aware (language given)"
    files+=("$out/mole_l1_$l1.jsonl" "$out/mole_l1_${l1}_aware.jsonl")
  done
  for kd in layerwise logits none; do
    "$hlora" decode "$exp/test.jsonl" --model "$exp/student_$kd/best" -o "$out/student_$kd.jsonl"
    names+=",student KD $kd"; files+=("$out/student_$kd.jsonl")
  done
  "$hlora" decode "$exp/test.jsonl" --model "$exp/mole_add_new/best" -o "$out/mole_add_new.jsonl"
  names+=",MoLE L1=$main_l1 + $new added (--init-from; router)"
  files+=("$out/mole_add_new.jsonl")
  for metric in mer cer; do  # CER too: on a short budget word errors saturate and hide differences
    "$hlora" score "$exp/test.jsonl" "${files[@]}" --systems "$names" --markdown --metric "$metric" \
      --json "$out/scores_$metric.json" > "$out/table_$metric.md"
  done
  cp "$out/table_mer.md" "$out/table.md"
  {
    echo "| adding $new | wall seconds |"; echo "|---|---|"
    t_expert=$(awk -v n="expert_$new" '$1 == n {print $2}' "$exp/times.tsv" | tail -1)
    t_fuse=$(awk '$1 == "mole_add_new" {print $2}' "$exp/times.tsv" | tail -1)
    t_hlora=$(awk '$1 == "hlora_scratch" {print $2}' "$exp/times.tsv" | tail -1)
    echo "| train the $new expert | ${t_expert:-?} |"
    echo "| fuse it in (--init-from, fusion weights and router only) | ${t_fuse:-?} |"
    echo "| MoLE total | $(( ${t_expert:-0} + ${t_fuse:-0} )) |"
    echo "| HLoRA k=$main_k from scratch on every language (its MER and CER: the HLoRA row above) | ${t_hlora:-?} |"
  } > "$out/add_language.md"
  cat "$out/table.md" "$out/add_language.md"
fi

if want 8; then
  log 8 "RESULTS.md"
  results main RESULTS.md
fi

if want 9; then
  log 9 "the whole Whisper (seq2seq): zero-shot, shared LoRA, experts, MoLE aware / agnostic, student"
  s2s=$exp/seq2seq out=$exp/seq2seq/decode
  mkdir -p "$out"
  # Whisper's own tokens (no vocab); one evaluation, at the end: dev decoding runs the decoder.
  cat > "$s2s/run.yaml" <<YAML
backbone: $backbone
backbone_mode: seq2seq
encoder_input: $s2s_input
train: $exp/train.jsonl
dev: $exp/dev.jsonl
lid_weight: 1.0
lr: $s2s_lr
head_lr: $head_lr
warmup_steps: $(( s2s_steps / 10 + 1 ))
max_steps: $s2s_steps
batch_seconds: $batch_seconds
batching: $batching
max_duration: $batch_seconds
eval_every: $s2s_steps
save_every: $s2s_steps
metric: cer
YAML
  grep -v -E '^(backbone|backbone_mode|encoder_input):' "$s2s/run.yaml" > "$s2s/experts.yaml"
  s2s_train() {  # s2s_train NAME FLAGS...
    local name=$1; shift
    if [[ -f $s2s/$name/best/config.json ]]; then return; fi
    "$hlora" train --config "$s2s/run.yaml" --out "$s2s/$name" --overwrite "$@"
  }
  s2s_train shared_lora --model-type shared-lora
  dirs=()
  for l in $langs; do
    s2s_train "expert_$l" --model-type expert --languages "$l" --lora-rank "$expert_rank" --lora-alpha $(( 2 * expert_rank ))
    dirs+=("$s2s/expert_$l/best")
  done
  if [[ ! -f $s2s/mole/best/config.json ]]; then
    "$hlora" fuse "${dirs[@]}" --config "$s2s/experts.yaml" --l1 "$main_l1" --max-steps $(( s2s_steps / 3 + 1 )) \
      --warmup-steps 2 --lr 1e-2 --out "$s2s/mole" --overwrite
  fi
  if [[ ! -f $s2s/student/best/config.json ]]; then
    "$hlora" distill "${dirs[@]}" --config "$s2s/experts.yaml" --kd layerwise --lora-alpha 512 --out "$s2s/student" --overwrite
  fi
  "$hlora" prepare subset "$shared/data/real/manifest.jsonl" --languages "${langs// /,}" -o "$exp/real.jsonl"
  for set in test real; do
    in=$exp/$set.jsonl o=$out/$set
    mkdir -p "$o"
    "$hlora" decode "$in" --whisper "$backbone" --whisper-languages "${langs// /,}" -o "$o/zero_shot.jsonl"
    "$hlora" decode "$in" --model "$s2s/shared_lora/best" -o "$o/shared_lora.jsonl"
    decode_experts "$in" "$o" "$s2s"
    "$hlora" decode "$in" --model "$s2s/mole/best" -o "$o/mole_agnostic.jsonl"
    "$hlora" decode "$in" --model "$s2s/mole/best" --mode oracle -o "$o/mole_aware.jsonl"
    "$hlora" decode "$in" --model "$s2s/student/best" -o "$o/student.jsonl"
    names="Whisper-base zero-shot (its LID; 30 s padding),shared LoRA,experts (language given)"
    names+=",MoLE L1=$main_l1 agnostic (router),MoLE L1=$main_l1 aware (language given),student (layer-wise KD)"
    "$hlora" score "$in" "$o/zero_shot.jsonl" "$o/shared_lora.jsonl" "$o/experts.jsonl" "$o/mole_agnostic.jsonl" \
      "$o/mole_aware.jsonl" "$o/student.jsonl" --systems "$names" --markdown --json "$o/scores.json" > "$o/table.md"
    cat "$o/table.md"
  done
  # Repetition loops of zero-shot Whisper on synthetic voices: no cut, the token budget (default),
  # and the budget with a no-repeat 4-gram rule
  o=$out/test
  "$hlora" decode "$exp/test.jsonl" --whisper "$backbone" --whisper-languages "${langs// /,}" \
    --max-tokens-per-second 1000 -o "$o/zero_shot_uncut.jsonl"
  "$hlora" decode "$exp/test.jsonl" --whisper "$backbone" --whisper-languages "${langs// /,}" \
    --no-repeat-ngram 4 -o "$o/zero_shot_ngram.jsonl"
  "$hlora" score "$exp/test.jsonl" "$o/zero_shot_uncut.jsonl" "$o/zero_shot.jsonl" "$o/zero_shot_ngram.jsonl" \
    --systems "no cut (up to 444 tokens),12 tokens/s + 10 (default),12 tokens/s + 10 and no repeated 4-gram" \
    --markdown > "$o/loops.md"
  cat "$o/loops.md"
  results seq2seq RESULTS_seq2seq.md
fi

if want 10; then
  log 10 "export: each seq2seq expert as a transformers Whisper (LoRA folded, language forced), decoded again"
  s2s=$exp/seq2seq out=$exp/seq2seq/decode
  allow=()  # transformers' Whisper reads 30 s windows: a true-length model's export runs on input it never saw
  [[ $s2s_input == true-length ]] && allow=(--allow-30s-input)
  for l in $langs; do
    "$hlora" export hf "$s2s/expert_$l/best" --lang "$l" -o "$s2s/export/expert_$l" --overwrite "${allow[@]}"
  done
  # CTranslate2 (faster-whisper's engine), where it is installed: the exports converted, float32 and int8
  ct2=(); "$py" -c "import ctranslate2" 2>/dev/null && ct2=(float32 int8)
  for set in test real; do  # stage 9's experts.jsonl beside the exports decoded by `hlora decode --whisper`
    in=$exp/$set.jsonl o=$out/$set
    files=("$o/experts.jsonl" "$o/exported.jsonl")
    names="experts in hlora ($s2s_input input),experts exported: transformers Whisper (30 s input)"
    : > "$o/exported.jsonl"
    for q in "${ct2[@]}"; do : > "$o/exported_ct2_$q.jsonl"; files+=("$o/exported_ct2_$q.jsonl"); done
    for q in "${ct2[@]}"; do names+=",experts exported: CTranslate2 $q"; done
    for l in $langs; do
      "$hlora" prepare subset "$in" --languages "$l" -o "$o/$set.$l.jsonl"
      "$hlora" decode "$o/$set.$l.jsonl" --whisper "$s2s/export/expert_$l" -o "$o/exported_$l.jsonl"
      cat "$o/exported_$l.jsonl" >> "$o/exported.jsonl"
      for q in "${ct2[@]}"; do
        "$py" "$here/local/ct2_decode.py" "$s2s/export/expert_$l" "$o/$set.$l.jsonl" "$o/exported_ct2_${q}_$l.jsonl" \
          --quantization "$q"
        cat "$o/exported_ct2_${q}_$l.jsonl" >> "$o/exported_ct2_$q.jsonl"
      done
    done
    "$hlora" score "$in" "${files[@]}" --markdown --systems "$names" > "$o/export.md"
    cat "$o/export.md"
  done
  results export RESULTS_export.md
fi
