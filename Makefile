PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
# The shared MNIST files beside the checkout; online users may leave it unset
# and convtrain downloads MNIST into CONVTRAIN_HOME instead.
SHARED_DATA := $(abspath ../shared/data)
export CONVTRAIN_DATA_DIR ?= $(if $(wildcard $(SHARED_DATA)/mnist),$(SHARED_DATA),)

.PHONY: install test test-fast serve bench clean

install: $(STAMP)

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --upgrade pip
	$(BIN)/pip install -e '.[worker,test]'
	touch $(STAMP)

test: $(STAMP)
	$(BIN)/pytest -q

test-fast: $(STAMP)
	$(BIN)/pytest -q -m "not e2e"

serve: $(STAMP)
	$(BIN)/convtrain serve

bench: $(STAMP)
	$(BIN)/python bench/train_throughput.py
	$(BIN)/python bench/concurrent_jobs.py
	$(BIN)/python bench/api_latency.py
	$(BIN)/python bench/predict_latency.py
	$(BIN)/python bench/recovery.py
	$(BIN)/python bench/jsparse_speed.py
	$(BIN)/python bench/sweep_planning.py
	$(BIN)/python bench/search_efficiency.py

clean:
	rm -rf $(VENV) build *.egg-info
