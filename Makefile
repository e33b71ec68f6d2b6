# make run: serve the site with the WeChat sandbox on http://127.0.0.1:8000
# make test: make lint, then the whole test suite against a real MariaDB and the sandbox over HTTP
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
CONFIG ?= settings.toml

.PHONY: run check-config test bench bench-profile check-reliability venv db browser tools lint clean play-miniprogram play-app \
	screenshots

run: db
	$(PY) server.py --config $(CONFIG)

# The configuration check (README "Configuration check"): ok / warning / error per settings key; fails on an error.
# WeChat's answers need WeChat: in development the sandbox, so with `make run` going in another terminal.
check-config: db
	$(PY) server.py --check --config $(CONFIG)

# lint comes first: a type error or a broken import contract fails before the slow suite starts.
test: lint db browser tools
	$(PY) -m pytest

# The reliability suite's long run: bigger races, longer faults, more fuzzing; ends with the figures table.
check-reliability: db tools
	WXLOGIN_RELIABILITY=long $(PY) -m pytest tests/reliability -m reliability

# Throughput, latency and CPU per request against the seed-style peer; one table and the targets (bench/README.md).
bench: db tools
	$(PY) -m pip install -q -e '.[test,bench]'
	$(PY) bench/run.py

# Where one server process spends its time under one case: CASE=login|me|qr|mp|phone|peer (py-spy, bench/README.md).
bench-profile: db tools
	$(PY) -m pip install -q -e '.[test,bench]'
	$(PY) bench/profile.py $(or $(CASE),qr)

venv: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[test]'
	touch $@

db: venv
	PY=$(PY) CONFIG=$(CONFIG) scripts/ensure-mysql.sh

# Chromium for the browser tests, axe-core (npm, into .cache/axe) for the accessibility test.
browser:
	scripts/ensure-chromium.sh
	scripts/ensure-axe.sh

# A PNG of every page state (desktop, phone, WeChat browser; Chinese and English) and an index.html, in
# screenshots/ (ignored by git); ONLY=<pytest -k expression> narrows it, e.g. make screenshots ONLY=login.
screenshots: db browser
	$(PY) scripts/screenshots.py screenshots $(if $(ONLY),-k "$(ONLY)")

tools:
	scripts/ensure-tools.sh

# With `make run` going in another terminal: log a sandbox person in through the JSON API.
# Then profile fill-in: NICKNAME (default 小程序用户) and AVATAR=plain|risky|review|none (default plain).
play-miniprogram: venv
	$(PY) -m wxlogin.sandbox play --client miniprogram --person $(or $(PERSON),zhangsan) \
		--nickname "$(or $(NICKNAME),小程序用户)" --avatar $(or $(AVATAR),plain)

play-app: venv
	$(PY) -m wxlogin.sandbox play --client app --person $(or $(PERSON),zhangsan)

# mypy --strict over site/ ([tool.mypy]), ruff ([tool.ruff]), the import contracts ([tool.importlinter]).
# Each runs even when an earlier one fails, so one run lists every finding; the target fails if any did.
LINT_PATHS := site tests bench server.py
lint: venv
	@status=0; \
	echo "mypy --strict site/"; $(VENV)/bin/mypy || status=1; \
	echo "ruff check $(LINT_PATHS)"; $(VENV)/bin/ruff check --output-format concise $(LINT_PATHS) || status=1; \
	echo "lint-imports"; $(VENV)/bin/lint-imports || status=1; \
	exit $$status

clean:
	rm -rf $(VENV) .pytest_cache
