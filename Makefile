# Two commands for a fresh machine: `make demo` (the main job) and `make test`.
# Each creates the virtualenv on first use.
PY ?= python3
VENV ?= .venv
TORCH_SPEC ?= torch==2.13.0
BIN := $(VENV)/bin
export HF_HUB_OFFLINE ?= 1
export GRADIO_ANALYTICS_ENABLED ?= False

.PHONY: demo test ui bench-smoke clean

$(BIN)/storyface: pyproject.toml
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q "$(TORCH_SPEC)"
	$(BIN)/python -m pip install -q -e ".[test]"
	touch $@

demo: $(BIN)/storyface
	$(BIN)/storyface demo --out out/demo

# Both cores (one pytest worker each, files kept whole so module fixtures load once), one BLAS thread each.
test: $(BIN)/storyface
	OMP_NUM_THREADS=1 $(BIN)/python -m pytest -q -n auto --dist loadfile

ui: $(BIN)/storyface
	$(BIN)/storyface ui

bench-smoke: $(BIN)/storyface
	$(BIN)/python bench/bench_gpu.py --smoke

clean:
	rm -rf $(VENV) out
