#!/usr/bin/env bash
# The GPU figures of BENCHMARKS.md in one run, on a machine with a CUDA GPU and torch (python3):
#   bash bench/gpu.sh [WHISPER_DIR] [LOG_DIR] [STEP ...]
# WHISPER_DIR: Whisper-base, or only its config and tokenizer files (random weights: the same speed).
# STEP: tests, mfu, core, kernels (default: all four, about 25 minutes at most; name some to split a
# run over shorter sessions). Each step is bounded, so one that runs long leaves the others their
# time; logs go to LOG_DIR.
set -uo pipefail
w=${1:-$HOME/.cache/hlora/whisper-base} log=${2:-exp/gpu}
steps=" ${*:3} "
[ "$steps" = "  " ] && steps=" tests mfu core kernels "
for s in $steps; do
  case $s in tests | mfu | core | kernels) ;; *) echo "bench/gpu.sh: unknown step '$s': choose tests, mfu, core, kernels" >&2; exit 2 ;; esac
done
want() { [[ "$steps" == *" $1 "* ]]; }
mkdir -p "$log"
export PYTHONUNBUFFERED=1
py=${PYTHON:-python3}
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader | tee "$log/gpu.txt"
$py -c "import torch; print('torch', torch.__version__)" | tee -a "$log/gpu.txt"
# the CUDA tests: compiled decoding equals eager, CUDA decoding equals CPU decoding, bf16 training
want tests && timeout 300 $py -m pytest -q -p no:cacheprovider tests/infer/test_device.py tests/train/test_model_types.py \
  tests/train/test_compiled_train.py tests/model/test_compiled.py tests/model/test_hlora.py \
  -k "cuda or compiled or bucket" 2>&1 | tail -15 | tee "$log/pytest.log"
# training throughput, model FLOP utilisation and GPU busy share: HuBERT-base-size HLoRA k=9, seq2seq
# Whisper-base; each eager and compiled (`hlora train --compile`)
want mfu && timeout 590 $py bench/train_speed.py --mfu --compile --device cuda --bf16 --mfu-batches 16,64 --seconds 10 --steps 4 \
  --whisper "$w" --profile-dir "$log" 2>&1 | tee "$log/train_mfu.log"
# the model core on a mixed-language batch, eager and compiled (CUDA graphs)
want core && timeout 420 $py bench/core_speed.py --quick --device cuda --dtype bf16 --batch 16 --compile --whisper "$w" \
  2>&1 | tee "$log/core_speed.log"
# kernels a bf16 training step launches and its time: the textbook LoRA forward against hlora's
want kernels && timeout 150 $py bench/train_speed.py --kernels --device cuda --batch 16 --seconds 10 --steps 4 --whisper "$w" \
  2>&1 | tee "$log/train_kernels.log"
exit 0
