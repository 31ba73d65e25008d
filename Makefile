# snnc: `make test` and `make demo` set up everything they need on a fresh machine.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-stamp
EXAMPLES := examples/fashion_mnist
# PyGeNN is on no package index: `make venv` installs its wheel from here when it is present.
WHEELS ?= ../shared/wheels
GENN_WHEEL := $(firstword $(wildcard $(WHEELS)/pygenn-5.4.0-*.whl))

.PHONY: venv data examples test lint demo bench paper-table peer-bench fuzz fuzz-targets clean

venv: $(STAMP)

# torch==2.13.0 is named on the same pip line so the local CPU wheel is used.
$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q "torch==2.13.0" -e ".[dev]"
ifneq ($(GENN_WHEEL),)
	$(PY) -m pip install -q "$(GENN_WHEEL)"
else
	@echo "note: no $(WHEELS)/pygenn-5.4.0-*.whl, so PyGeNN is not installed and the GeNN tests are skipped"
endif
	touch $(STAMP)

data: venv
	$(PY) scripts/prepare_data.py

examples: data
	test -f $(EXAMPLES)/mlp.onnx -a -f $(EXAMPLES)/cnn.onnx || $(PY) $(EXAMPLES)/train.py

lint: venv
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

test: venv data lint
	$(PY) -m pytest -q -n 2

demo: venv data examples
	$(PY) scripts/demo.py

bench: venv data examples
	$(PY) benchmarks/run_all.py

# Ostrau et al.'s Table 1, our version: trains the networks when missing, then sim, NEST, SpiNN3, SpiNN5.
paper-table: venv
	$(PY) examples/paper_benchmark/paper_table.py

# snnc against SpikingJelly's ann2snn. SpikingJelly is installed without its dependencies: it
# declares torchvision and torchaudio, which would replace the CPU build of torch.
peer-bench: venv data examples
	$(PY) -m pip install -q --no-deps "spikingjelly==2.0.0" "loguru>=0.7,<1"
	$(PY) benchmarks/bench_peer.py

# 100,000 mutated .snnir files through the reader and the verifier: only snnc's own errors allowed
# (failing inputs are kept in fuzz-failures/).
fuzz: venv
	$(PY) tests/fuzz_snnir.py --count 100000 --seed 0 --out fuzz-failures

# random small CNNs through NEST, GeNN and Loihi, each run.py against sim on its compiled graph
# (failing cases are kept in fuzz-targets/).
fuzz-targets: venv
	$(PY) tests/fuzz_targets.py --count 20 --seed 0 --out fuzz-targets

clean:
	rm -rf $(VENV) data out out-* build *.egg-info .pytest_cache .ruff_cache .hypothesis
