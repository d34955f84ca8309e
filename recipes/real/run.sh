#!/usr/bin/env bash
# Real speech: three human-recorded corpora (en non-native, ko far-field, zh studio) on Whisper-base;
# what fine-tuning with hlora buys over Whisper zero-shot, both papers' systems on one table.
#   stage 1  import the three corpora; ko and zh split by sentence, en by its own train/test split
#   stage 2  normalize, sample the test and dev sets, vocabulary, KenLM from the training text
#   stage 3  Whisper-base zero-shot: its own LID (restricted to en/ko/zh), and the language given
#   stage 4  seq2seq (the whole Whisper): shared LoRA, experts, HLoRA, MoLE for each L1, students
#   stage 5  decode and score the seq2seq systems
#   stage 6  CTC on the encoder: ctc (LoRA-free, S2), shared-LoRA, LIDLoRA, HLoRA for each k
#   stage 7  decode and score the CTC systems (oracle, two-stage, single pass, + KenLM)
#   stage 8  native English (../shared/data/real's en clips): did tuning on L2 English cost L1?
#   stage 9  RESULTS.md (local/results.py)
# Every stage skips what is done (a model with best/config.json, an output that exists), and an
# interrupted training resumes from its checkpoint: run it again to continue.
#   ./run.sh --data-root DIR [--stage N] [--stop-stage M] [--exp DIR] [--quick] [--smoke]
#            [--n-test N] [--n-dev N] [--ks "1 3 5"] [--main-k K] [--l1s "2 4"] [--ctc-steps N]
#            [--s2s-steps N] [--ctc-batch-seconds S] [--threads N] [--ctc-long-steps N]
# --ctc-long-steps N: also the ctc model trained N steps (a learning curve beside the budgeted rows).
# DIR holds the repositories as cloned: DIR/speechocean762, DIR/Korean-Read-Speech-Corpus,
# DIR/Domain-Open-source-Datasets.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
shared=${SHARED:-$root/../shared}
stage=1; stop_stage=9; data_root=""; exp=${EXP:-$root/exp/real}
langs="en ko zh"; n_test=60; n_dev=8; ks="1 3 5"; main_k=3; l1s="2 4"; main_l1=2
ctc_steps=300; ctc_batch_seconds=24; ctc_long_steps=0; s2s_steps=80; s2s_batch=30; expert_rank=32; threads=""
quick=false; smoke=false
backbone=${BACKBONE:-${HLORA_CACHE:-$HOME/.cache/hlora}/whisper-base}
# shellcheck source=../utils/stages.sh
. "$root/recipes/utils/stages.sh"
recipe_options data_root exp stage stop_stage backbone n_test n_dev ks main_k l1s main_l1 ctc_steps s2s_steps threads \
  ctc_batch_seconds ctc_long_steps quick smoke
mode=full  # the last of --quick / --smoke given decides
preset_quick() { mode=quick; n_test=20; ks="3"; l1s="2"; ctc_steps=100; s2s_steps=30; exp=${EXP:-$root/exp/real_quick}; }
preset_smoke() {
  mode=smoke; n_test=4; n_dev=2; ks="3"; l1s="2"; ctc_steps=3; ctc_batch_seconds=20; s2s_steps=2; expert_rank=4
  exp=$root/exp/real_smoke
}
parse_options "$@"
hlora=$root/.venv/bin/hlora py=$root/.venv/bin/python
data=$exp/data
mkdir -p "$exp" "$data"
if [[ $mode == smoke && -z $data_root ]]; then  # a tiny synthetic copy of the three layouts
  data_root=$exp/corpora
  [[ -f $data_root/.done ]] || "$py" "$here/local/synth_layouts.py" "$data_root"
fi
if want 1 && [[ -z $data_root ]]; then echo "--data-root DIR is needed (see the top of $0)" >&2; exit 2; fi
thr=(); [[ -n $threads ]] && thr=(--threads "$threads")
sets="test native_en"; [[ $mode == smoke ]] && sets=test  # smoke: the same commands once
lang_csv=${langs// /,}
zh_dir=Domain-Open-source-Datasets/Mandarin_Chinese_Speech_Corpus_for_TTS_Customer_Service_Scene

if want 1; then
  log 1 "import: speechocean762 (its split), Korean Read Speech and Magic Data zh (split by sentence)"
  so=$data_root/speechocean762
  for s in train test; do
    "$hlora" prepare kaldi "$so/$s" --lang en --audio-root "$so" -o "$data/en_$s.all.jsonl"
  done
  "$hlora" prepare deeply-ko "$data_root/Korean-Read-Speech-Corpus" -o "$data/ko.all.jsonl"
  "$hlora" prepare magicdata-tts "$data_root/$zh_dir" -o "$data/zh.all.jsonl"
  # No sentence on both sides: about a fifth of the sentences, in every room and distance, for test.
  for l in ko zh; do
    "$hlora" prepare split "$data/$l.all.jsonl" --by text --test-fraction 0.2 --seed 0 \
      -o "$data/${l}_train.all.jsonl" --test-out "$data/${l}_test.all.jsonl"
  done
fi

if want 2; then
  log 2 "normalize; test: $n_test random utterances per language (zh: all 50); dev: $n_dev per language"
  for s in train test; do
    cat "$data"/{en,ko,zh}_"$s".all.jsonl > "$data/$s.raw.jsonl"
    "$hlora" normalize "$data/$s.raw.jsonl" -o "$data/$s.norm.jsonl"
  done
  # dev: held out of the training side by sentence (ko, zh) or speaker (en), then sampled
  "$hlora" prepare split "$data/train.norm.jsonl" --by text --test-fraction 0.05 --seed 1 \
    -o "$data/train.split.jsonl" --test-out "$data/dev.split.jsonl"
  "$hlora" prepare subset "$data/dev.split.jsonl" --per-language "$n_dev" --seed 1 -o "$exp/dev.jsonl"
  cp "$data/train.split.jsonl" "$exp/train.jsonl"
  "$hlora" prepare subset "$data/test.norm.jsonl" --per-language "$n_test" --seed 0 -o "$exp/test.jsonl"
  "$hlora" prepare vocab "$exp/train.jsonl" -o "$exp/vocab.json" --prefix-tokens --coverage "$exp/test.jsonl"
  "$hlora" lm build "$exp/train.jsonl" -o "$exp/lm" --order 3
  "$hlora" prepare subset "$shared/data/real/manifest.jsonl" --languages en -o "$data/native_en.raw.jsonl"
  "$hlora" normalize "$data/native_en.raw.jsonl" -o "$exp/native_en.jsonl"
fi

dec() {  # dec OUT DECODE-ARGS...: decode unless OUT exists (decode writes it whole or not at all)
  local out=$1; shift
  [[ -f $out ]] || "$hlora" decode "$@" "${thr[@]}" -o "$out"
}
per_language() {  # per_language IN OUTDIR NAME CMD...: CMD run on each language's rows of IN with
  local in=$1 o=$2 name=$3 set l; shift 3  # LANG in place of {}, joined into OUTDIR/NAME.jsonl
  set=$(basename "$in" .jsonl)
  [[ -f $o/$name.jsonl ]] && return
  for l in $langs; do
    [[ -f $o/$set.$l.jsonl ]] || "$hlora" prepare subset "$in" --languages "$l" -o "$o/$set.$l.jsonl"
    "${@//\{\}/$l}" "$o/$set.$l.jsonl" "$o/$name.$l.jsonl"
  done
  # shellcheck disable=SC2046
  "$py" "$here/local/results.py" join "$o/$name.jsonl" $(for l in $langs; do printf '%s ' "$o/$name.$l.jsonl"; done)
}
zs_given() { dec "$3" "$2" --whisper "$backbone" --whisper-languages "$1"; }  # zs_given LANG IN OUT

if want 3; then
  log 3 "Whisper-base zero-shot: its own LID over $langs, and the language given"
  for set in $sets; do
    o=$exp/decode/$set; mkdir -p "$o"
    dec "$o/zero_shot.jsonl" "$exp/$set.jsonl" --whisper "$backbone" --whisper-languages "$lang_csv"
    if [[ $set == test ]]; then per_language "$exp/$set.jsonl" "$o" zero_shot_given zs_given "{}"
    else zs_given en "$exp/$set.jsonl" "$o/zero_shot_given.jsonl"; fi
  done
fi

# Training: one schedule file per readout; experts, fuse and distill take their model from the experts.
s2s=$exp/seq2seq ctc=$exp/ctc
mkdir -p "$s2s" "$ctc"
cat > "$s2s/run.yaml" <<YAML
backbone: $backbone
backbone_mode: seq2seq
encoder_input: true-length
train: $exp/train.jsonl
dev: $exp/dev.jsonl
lora_rank: $expert_rank
lora_alpha: $(( 2 * expert_rank ))
lid_weight: 1.0
lr: 5e-4
head_lr: 5e-3
warmup_steps: $(( s2s_steps / 10 + 1 ))
schedule: cosine
max_steps: $s2s_steps
batch_seconds: $s2s_batch
batching: mixed
max_duration: 30
eval_every: 100000
save_every: $(( s2s_steps / 2 + 1 ))
metric: cer
YAML
grep -v -E '^(backbone|backbone_mode|encoder_input|lora_rank|lora_alpha):' "$s2s/run.yaml" > "$s2s/experts.yaml"
cat > "$ctc/run.yaml" <<YAML
backbone: $backbone
train: $exp/train.jsonl
dev: $exp/dev.jsonl
vocab: $exp/vocab.json
lora_rank: 16
lora_alpha: 32
lid_weight: 1.0
lr: 2e-3
head_lr: 1e-2
warmup_steps: 30
schedule: cosine
max_steps: $ctc_steps
batch_seconds: $ctc_batch_seconds
batching: mixed
max_duration: 30
eval_every: $(( ctc_steps / 3 + 1 ))
save_every: $(( ctc_steps / 3 + 1 ))
metric: cer
YAML
timed() {  # timed DIR COMMAND...: run unless DIR/best exists; its wall seconds go to times.tsv
  local dir=$1 t0; shift; t0=$(date +%s)
  [[ -f $dir/best/config.json ]] && return
  "$@"
  printf '%s\t%s\n' "${dir#"$exp"/}" "$(( $(date +%s) - t0 ))" >> "$exp/times.tsv"
}
train() {  # train DIR CONFIG FLAGS...: train, or resume an interrupted run
  local dir=$1 config=$2; shift 2
  if [[ -f $dir/checkpoint.pt ]]; then "$hlora" train --out "$dir" --resume
  else "$hlora" train --config "$config" --out "$dir" --overwrite "$@"; fi
}
experts() { for l in $langs; do printf '%s ' "$s2s/expert_$l/best"; done; }

if want 4; then
  log 4 "seq2seq: shared LoRA and HLoRA k=$main_k ($(( 3 * s2s_steps )) steps), experts ($s2s_steps each), MoLE L1 in $l1s, students"
  # Shared LoRA and HLoRA see as many batches as the three experts together: the same compute.
  timed "$s2s/shared_lora" train "$s2s/shared_lora" "$s2s/run.yaml" --model-type shared-lora \
    --max-steps $(( 3 * s2s_steps ))
  for l in $langs; do timed "$s2s/expert_$l" train "$s2s/expert_$l" "$s2s/run.yaml" --model-type expert --languages "$l"; done
  timed "$s2s/hlora" train "$s2s/hlora" "$s2s/run.yaml" --model-type hlora --k "$main_k" --max-steps $(( 3 * s2s_steps ))
  fuse_steps=$(( s2s_steps / 3 + 1 ))
  for l1 in $l1s; do
    # shellcheck disable=SC2046
    timed "$s2s/mole_l1_$l1" "$hlora" fuse $(experts) --config "$s2s/experts.yaml" --l1 "$l1" --max-steps "$fuse_steps" \
      --warmup-steps 2 --lr 1e-2 --out "$s2s/mole_l1_$l1" --overwrite
  done
  for kd in layerwise logits none; do
    # shellcheck disable=SC2046
    timed "$s2s/student_$kd" "$hlora" distill $(experts) --config "$s2s/experts.yaml" --kd "$kd" --lora-rank 96 \
      --lora-alpha 192 --out "$s2s/student_$kd" --overwrite
  done
fi

expert_dec() { dec "$3" "$2" --model "$s2s/expert_$1/best" --decoder greedy; }  # expert_dec LANG IN OUT

if want 5; then
  log 5 "decode the seq2seq systems (greedy, single pass unless the language is given)"
  for set in $sets; do
    o=$exp/decode/$set; in=$exp/$set.jsonl; g=(--decoder greedy)
    dec "$o/s2s_shared_lora.jsonl" "$in" --model "$s2s/shared_lora/best" "${g[@]}"
    if [[ $set == test ]]; then per_language "$in" "$o" s2s_experts expert_dec "{}"
    else expert_dec en "$in" "$o/s2s_experts.jsonl"; fi
    dec "$o/s2s_hlora.jsonl" "$in" --model "$s2s/hlora/best" "${g[@]}"
    dec "$o/s2s_hlora_oracle.jsonl" "$in" --model "$s2s/hlora/best" --mode oracle "${g[@]}"
    for l1 in $l1s; do
      dec "$o/s2s_mole_l1_${l1}.jsonl" "$in" --model "$s2s/mole_l1_$l1/best" "${g[@]}"
      dec "$o/s2s_mole_l1_${l1}_aware.jsonl" "$in" --model "$s2s/mole_l1_$l1/best" --mode oracle "${g[@]}"
    done
    for kd in layerwise logits none; do dec "$o/s2s_student_$kd.jsonl" "$in" --model "$s2s/student_$kd/best" "${g[@]}"; done
  done
fi

if want 6; then
  log 6 "CTC on the encoder: ctc (LoRA-free), shared-LoRA, LIDLoRA, HLoRA for k in $ks ($ctc_steps steps each)"
  # The LoRA-free model fine-tunes every encoder weight: at the LoRA rate it would leave the pretrained encoder.
  timed "$ctc/ctc" train "$ctc/ctc" "$ctc/run.yaml" --model-type ctc --lr 1e-4
  timed "$ctc/shared_lora" train "$ctc/shared_lora" "$ctc/run.yaml" --model-type shared-lora
  timed "$ctc/lidlora" train "$ctc/lidlora" "$ctc/run.yaml" --model-type lidlora
  for k in $ks; do timed "$ctc/hlora_k$k" train "$ctc/hlora_k$k" "$ctc/run.yaml" --model-type hlora --k "$k"; done
  if (( ctc_long_steps > 0 )); then
    timed "$ctc/ctc_long" train "$ctc/ctc_long" "$ctc/run.yaml" --model-type ctc --lr 1e-4 --max-steps "$ctc_long_steps" \
      --eval-every $(( ctc_long_steps / 6 + 1 )) --save-every $(( ctc_long_steps / 6 + 1 ))
  fi
fi

if want 7; then
  log 7 "decode the CTC systems"
  lms=(); for l in $langs; do lms+=(--lm "$l=$exp/lm/$l.bin"); done
  for set in $sets; do
    o=$exp/decode/$set; in=$exp/$set.jsonl
    dec "$o/ctc_ctc.jsonl" "$in" --model "$ctc/ctc/best"
    dec "$o/ctc_shared_lora.jsonl" "$in" --model "$ctc/shared_lora/best"
    dec "$o/ctc_lidlora_oracle.jsonl" "$in" --model "$ctc/lidlora/best" --mode oracle
    dec "$o/ctc_two_stage.jsonl" "$in" --model "$ctc/lidlora/best" --mode two-stage --lid-model "$ctc/ctc/best"
    for k in $ks; do dec "$o/ctc_hlora_k$k.jsonl" "$in" --model "$ctc/hlora_k$k/best"; done
    dec "$o/ctc_hlora_oracle.jsonl" "$in" --model "$ctc/hlora_k$main_k/best" --mode oracle
    dec "$o/ctc_hlora_lm.jsonl" "$in" --model "$ctc/hlora_k$main_k/best" "${lms[@]}"
    [[ ! -f $ctc/ctc_long/best/config.json ]] || dec "$o/ctc_ctc_long.jsonl" "$in" --model "$ctc/ctc_long/best"
  done
fi

if want 8; then
  log 8 "score"
  for set in $sets; do
    "$py" "$here/local/results.py" score "$exp/$set.jsonl" "$exp/decode/$set" --hlora "$hlora" \
      --ks "$ks" --l1s "$l1s" --main-k "$main_k"
  done
fi

if want 9; then
  log 9 "RESULTS.md"
  results=$here/RESULTS.md
  [[ $mode != full ]] && results=$exp/RESULTS.md
  "$py" "$here/local/results.py" write "$exp" "$results" --command "recipes/real/run.sh --data-root DIR$(
    [[ $mode != full ]] && printf ' --%s' "$mode")" --main-k "$main_k" --main-l1 "$main_l1" \
    --s2s-steps "$s2s_steps" --ctc-steps "$ctc_steps"
  echo "wrote $results"
fi
