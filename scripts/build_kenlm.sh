#!/usr/bin/env bash
# Build KenLM's lmplz and build_binary (not shipped by any package) from the kenlm source
# distribution on PyPI, into tools/kenlm/bin. Needs cmake, a C++ compiler and Boost; on Debian the
# script installs them with apt when run as root.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
dest=$root/tools/kenlm
py=${PYTHON:-$root/.venv/bin/python}
if [[ -x $dest/bin/lmplz && -x $dest/bin/build_binary ]]; then
  echo "kenlm tools already in $dest/bin"; exit 0
fi
if ! dpkg -s libboost-program-options-dev libboost-system-dev libboost-thread-dev libboost-test-dev zlib1g-dev \
    libbz2-dev liblzma-dev cmake >/dev/null 2>&1; then
  if [[ $(id -u) -ne 0 ]]; then
    echo "install cmake and Boost first: apt-get install cmake libboost-program-options-dev libboost-system-dev" \
         "libboost-thread-dev libboost-test-dev zlib1g-dev libbz2-dev liblzma-dev" >&2
    exit 1
  fi
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq cmake libboost-program-options-dev libboost-system-dev libboost-thread-dev \
    libboost-test-dev zlib1g-dev libbz2-dev liblzma-dev >/dev/null
fi
work=$(mktemp -d); trap 'rm -rf "$work"' EXIT
"$py" -m pip download -q --no-deps --no-binary kenlm -d "$work" kenlm
tar -xzf "$work"/kenlm-*.tar.gz -C "$work"
src=$(find "$work" -maxdepth 1 -type d -name 'kenlm-*' | head -n1)
cmake -S "$src" -B "$work/build" -DCMAKE_BUILD_TYPE=Release -DKENLM_MAX_ORDER=6 >/dev/null
cmake --build "$work/build" --target lmplz build_binary -j "$(nproc)" >/dev/null
mkdir -p "$dest/bin"
cp "$work/build/bin/lmplz" "$work/build/bin/build_binary" "$dest/bin/"
echo "built $dest/bin/lmplz and $dest/bin/build_binary"
