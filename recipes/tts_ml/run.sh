#!/usr/bin/env bash
# Multilingual TTS recipe (ESPnet-style stages): real UD sentences spoken by espeak-ng (en de fr es pt ko)
# and Open JTalk (ja); baseline, LIDLoRA and HLoRA for each k on a frozen encoder; LID, decoding in every
# mode, KenLM, scoring, the k ablation; the same models on the 20 real clips next to Whisper-base
# zero-shot; long recordings (test clips joined) decoded in windows; RESULTS.md at the end. Calls the
# hlora CLI, and local/long_audio.py to join clips.
#   ./run.sh [--stage N] [--stop-stage M] [--backbone DIR] [--langs "en de ..."] [--train N] [--dev N]
#            [--test N] [--ks "1 2 3 4 5"] [--main-k K] [--steps N] [--batch-seconds S] [--lr LR]
#            [--head-lr LR] [--smoke]
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
shared=${SHARED:-$root/../shared}
stage=1; stop_stage=7
langs="en de fr es pt ko ja"; n_train=200; n_dev=15; n_test=40; ks="1 3 5"; main_k=3; steps=800; batch=16
lr=5e-4; head_lr=5e-3
backbone=${BACKBONE:-${HLORA_CACHE:-$HOME/.cache/hlora}/whisper-base}
exp=${EXP:-$root/exp/tts_ml}
while [[ $# -gt 0 ]]; do
  case $1 in
    --stage) stage=$2; shift 2 ;;  --stop-stage) stop_stage=$2; shift 2 ;;
    --backbone) backbone=$2; shift 2 ;;  --langs) langs=$2; shift 2 ;;
    --train) n_train=$2; shift 2 ;;  --dev) n_dev=$2; shift 2 ;;  --test) n_test=$2; shift 2 ;;
    --ks) ks=$2; shift 2 ;;  --main-k) main_k=$2; shift 2 ;;  --steps) steps=$2; shift 2 ;;
    --exp) exp=$2; shift 2 ;;  --batch-seconds) batch=$2; shift 2 ;;
    --lr) lr=$2; shift 2 ;;  --head-lr) head_lr=$2; shift 2 ;;
    --smoke) langs="en ja"; n_train=6; n_dev=2; n_test=3; ks="1 3"; main_k=3; steps=4; batch=30
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

if want 3; then
  log 3 "train baseline, LIDLoRA, and HLoRA for k in $ks (the ablation)"
  for sys in baseline lidlora; do
    if [[ ! -f $exp/$sys/best/adapters.safetensors ]]; then
      if [[ -f $exp/$sys/checkpoint.pt ]]; then "$hlora" train --out "$exp/$sys" --resume
      else "$hlora" train --config "$exp/run.yaml" --model-type "$sys" --out "$exp/$sys" --overwrite; fi
    fi
  done
  "$hlora" ablate --k "${ks// /,}" --config "$exp/run.yaml" --test "$exp/test.jsonl" -o "$exp/ablate"
fi

decode_all() {  # decode_all INPUT OUTDIR: every system on one set
  local in=$1 out=$2 hl=$exp/ablate/k$main_k/best
  mkdir -p "$out"
  "$hlora" decode "$in" --model "$exp/baseline/best" -o "$out/baseline.jsonl"
  "$hlora" decode "$in" --model "$exp/lidlora/best" --mode two-stage --lid-model "$exp/baseline/best" \
    -o "$out/two_stage.jsonl"
  "$hlora" decode "$in" --model "$exp/lidlora/best" --mode oracle -o "$out/lidlora_oracle.jsonl"
  for k in $ks; do
    "$hlora" decode "$in" --model "$exp/ablate/k$k/best" -o "$out/hlora_k$k.jsonl"
  done
  "$hlora" decode "$in" --model "$hl" --mode oracle -o "$out/hlora_oracle.jsonl"
  "$hlora" decode "$in" --model "$hl" $(for l in $langs; do printf -- '--lm %s=%s ' "$l" "$exp/lm/$l.bin"; done) \
    -o "$out/hlora_lm.jsonl"
  "$hlora" decode "$in" --whisper "$backbone" -o "$out/whisper.jsonl"
}
systems() {  # systems OUTDIR REF: the score table, systems as rows
  local out=$1 ref=$2 names="baseline,two-stage (LIDLoRA),LIDLoRA oracle" files=()
  files=("$out/baseline.jsonl" "$out/two_stage.jsonl" "$out/lidlora_oracle.jsonl")
  for k in $ks; do names+=",HLoRA k=$k single"; files+=("$out/hlora_k$k.jsonl"); done
  names+=",HLoRA k=$main_k oracle,HLoRA k=$main_k single + KenLM,Whisper-base zero-shot"
  files+=("$out/hlora_oracle.jsonl" "$out/hlora_lm.jsonl" "$out/whisper.jsonl")
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
    echo "--ks \"$ks\" --main-k $main_k --steps $steps --batch-seconds $batch --lr $lr --head-lr $head_lr\`."
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
    echo "## Ablation over k (HLoRA, single pass)"
    echo
    cat "$exp/ablate/ablation.md"
    echo
    echo "## Long audio: test clips joined per language (0.5 s gaps) into recordings of 60 s or more"
    echo
    cat "$exp/long/table.md"
  } > "$results.tmp" && mv "$results.tmp" "$results"
  echo "wrote $results"
fi
