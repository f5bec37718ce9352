# Entry points. The README's two commands are `make demo` and `make test`.
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
export HF_HUB_OFFLINE ?= 1
export TOKENIZERS_PARALLELISM ?= false

.PHONY: install demo test test-fast lint compile images
install: $(VENV)/.installed
$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	# torch first, pinned: the CPU wheel; a bare requirement would pull a multi-GB CUDA build
	$(PY) -m pip install --quiet torch==2.13.0
	$(PY) -m pip install --quiet -e ".[cluster,serve,test]"
	touch $@

# The whole DAG on this machine through kfp.local (profile: local, MiniLM on the SQuAD sample).
demo: install
	$(PY) -m pipeline run --local

test: install
	$(PY) -m pytest -p no:cacheprovider

test-fast: install
	$(PY) -m pytest -m "not slow and not docker"

# pyflakes and import order (pyproject.toml [tool.ruff]); `ruff check --fix .` sorts imports
lint: install
	$(PY) -m ruff check .

compile: install
	$(PY) -m pipeline compile

# Step images, built offline from a host-side wheelhouse. Pass options through ARGS:
#   make images ARGS=--local-base                      # CPU image, no registry needed (CI here)
#   make images ARGS="--variant all --prefix registry.example.com/ml --push"
images:
	images/build.sh $(ARGS)
