#!/usr/bin/env bash
# Multilingual TTS recipe (ESPnet-style stages): real UD sentences spoken by espeak-ng (en de fr es pt ko)
# and Open JTalk (ja); the HLoRA paper's systems on one encoder: the LoRA-free fully fine-tuned ctc model
# (S2), a shared-LoRA model, LIDLoRA oracle (S3) and two-stage (S4, with the ctc or the shared-LoRA model
# as first stage), HLoRA for each k (k = shared lower layers; S5 oracle, S6 single pass) with hard, soft
# and top-2 routing, BPE against characters, the pooled against the per-frame LID head; LID, KenLM,
# scoring, the k ablation; the same models on the real clips next to Whisper-base zero-shot; long
# recordings (test clips joined) decoded in windows; RESULTS.md at the end. Calls the hlora CLI, and
# local/long_audio.py to join clips.
#   ./run.sh [--stage N] [--stop-stage M] [--backbone DIR] [--langs "en de ..."] [--train N] [--dev N]
#            [--test N] [--ks "1 2 3 4 5"] [--main-k K] [--steps N] [--batch-seconds S] [--lr LR]
#            [--head-lr LR] [--ctc-lr LR] [--bpe-size N] [--smoke]
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
shared=${SHARED:-$root/../shared}
stage=1; stop_stage=7
langs="en de fr es pt ko ja"; n_train=200; n_dev=15; n_test=40; ks="1 2 3 4 5"; main_k=3; steps=800; batch=16
lr=5e-4; head_lr=5e-3; ctc_lr=1e-4; bpe_size=200
backbone=${BACKBONE:-${HLORA_CACHE:-$HOME/.cache/hlora}/whisper-base}
exp=${EXP:-$root/exp/tts_ml}
while [[ $# -gt 0 ]]; do
  case $1 in
    --stage) stage=$2; shift 2 ;;  --stop-stage) stop_stage=$2; shift 2 ;;
    --backbone) backbone=$2; shift 2 ;;  --langs) langs=$2; shift 2 ;;
    --train) n_train=$2; shift 2 ;;  --dev) n_dev=$2; shift 2 ;;  --test) n_test=$2; shift 2 ;;
    --ks) ks=$2; shift 2 ;;  --main-k) main_k=$2; shift 2 ;;  --steps) steps=$2; shift 2 ;;
    --exp) exp=$2; shift 2 ;;  --batch-seconds) batch=$2; shift 2 ;;
    --lr) lr=$2; shift 2 ;;  --head-lr) head_lr=$2; shift 2 ;;  --ctc-lr) ctc_lr=$2; shift 2 ;;
    --bpe-size) bpe_size=$2; shift 2 ;;
    --smoke) langs="en ja"; n_train=6; n_dev=2; n_test=3; ks="1 3"; main_k=3; steps=4; batch=30; bpe_size=30
             exp=$root/exp/tts_ml_smoke
             shift ;;
    *) echo "unknown option $1" >&2; exit 2 ;;
  esac
done
hlora=$root/.venv/bin/hlora
mkdir -p "$exp"
log() { printf '\n\033[1m== stage %s: %s\033[0m\n' "$1" "$2"; }
want() { (( $1 >= stage && $1 <= stop_stage )); }
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
  "$hlora" prepare synth $(texts train) --split train --per-language "$n_train" --seed 0 "${voice[@]}" -o "$exp/wav/train"
  # shellcheck disable=SC2046
  "$hlora" prepare synth $(texts dev) --split train --per-language "$n_dev" --seed 1 "${voice[@]}" -o "$exp/wav/dev"
  # shellcheck disable=SC2046
  "$hlora" prepare synth $(texts test) --split test --per-language "$n_test" --seed 2 "${voice[@]}" -o "$exp/wav/test"
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
batch_seconds: $batch
max_duration: $batch
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
  long=$exp/long hl=$exp/ablate/k$main_k/best py=$root/.venv/bin/python
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

if want 7; then
  log 7 "RESULTS.md"
  results=$here/RESULTS.md
  [[ $exp == *smoke* ]] && results=$exp/RESULTS.md
  {
    echo "# Results: recipes/tts_ml"
    echo
    echo "Backbone: \`$backbone\`; languages: $langs; per language $n_train train / $n_dev dev / $n_test test"
    echo "utterances (test voices never used in training); $steps training steps per model; main k = $main_k."
    echo "MER: CER for ja and ko, WER otherwise (after text_normalization); RTF: decode wall time / audio."
    echo "Reproduce: \`recipes/tts_ml/run.sh --langs \"$langs\" --train $n_train --dev $n_dev --test $n_test"
    echo "--ks \"$ks\" --main-k $main_k --steps $steps --batch-seconds $batch --lr $lr --head-lr $head_lr"
    echo "--ctc-lr $ctc_lr --bpe-size $bpe_size\`. k counts the shared lower layers (1..k shared LoRA, LID after"
    echo "layer k, k+1..6 per language), as the HLoRA paper defines it."
    echo
    echo "## TTS test set"
    echo
    cat "$exp/decode_test/table.md"
    echo
    echo "## Real clips (../shared/data/real) in the trained languages ($(grep -c . "$exp/real.jsonl") of 20;"
    echo "models trained on synthetic speech)"
    echo
    cat "$exp/decode_real/table.md"
    echo
    echo "## Ablation over k (HLoRA, single pass; k = shared lower layers)"
    echo
    cat "$exp/ablate/ablation.md"
    echo
    echo "## Long audio: test clips joined per language (0.5 s gaps) into recordings of 60 s or more"
    echo
    cat "$exp/long/table.md"
  } > "$results.tmp" && mv "$results.tmp" "$results"
  echo "wrote $results"
fi
