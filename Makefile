# moodtune — the two commands a newcomer needs: `make run` and `make test`.
PY ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-$(shell cat pyproject.toml | sha1sum | cut -c1-12)

.PHONY: run test test-fast lint bench venv clean

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	# torch first and pinned: pip takes the CPU build from local disk (see README)
	$(BIN)/pip install -q torch==2.13.0
	$(BIN)/pip install -q -e '.[train,spark,dev]'
	rm -f $(VENV)/.installed-*; touch $@

venv: $(STAMP)

## run the bot on the shipped model + catalogue: the web chat at http://127.0.0.1:8000/ (plus
## Discord / the Kakao skill when configured); `moodtune chat` is the terminal chat
run: $(STAMP)
	$(BIN)/moodtune run

## the whole test suite, slow tests included, then lint
test: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/pytest -q

test-fast: $(STAMP)
	$(BIN)/pytest -q -m "not slow"

lint: $(STAMP)
	$(BIN)/ruff check .

bench: $(STAMP)
	$(BIN)/python -m benchmarks.classifier --quick
	$(BIN)/python -m benchmarks.index --quick
	$(BIN)/python -m benchmarks.engine --quick

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache
