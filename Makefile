# The commands: `make demo` (run dynadex on the embedded default), `make airflow`
# (the Airflow UI with the DAGs, the emulator and a demo table; Ctrl-C stops it)
# and `make test` (run the test suite). Each creates or reuses .venv and installs
# what it needs; the second run skips the install (stamp file).
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.dynadex-installed

.PHONY: demo airflow test test-slow test-all bench plots lock clean settings-doc

$(STAMP): requirements.txt requirements-test.txt requirements-test-nodeps.txt pyproject.toml
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	@$(PY) -m pip install -q --disable-pip-version-check --upgrade "pip>=24" "setuptools==84.2.1"
	$(PY) -m pip install -q --disable-pip-version-check -r requirements.txt -r requirements-test.txt
	$(PY) -m pip install -q --disable-pip-version-check --no-deps -r requirements-test-nodeps.txt
	$(PY) -m pip install -q --disable-pip-version-check --no-deps --no-build-isolation -e .
	@touch $(STAMP)

demo: $(STAMP)
	$(PY) -m dynadex.demo

airflow: $(STAMP)
	@$(PY) -m dynadex.airflow_local

test: $(STAMP)
	$(PY) -m pytest -m "not slow" -q -n 2 --dist loadfile

test-slow: $(STAMP)
	$(PY) -m pytest -m slow -q

test-all: $(STAMP)
	$(PY) -m pytest -q

# docs/settings.md: the settings table (between <!-- settings:begin --> and <!-- settings:end -->) from include/dynadex/settings.py
settings-doc: $(STAMP)
	$(PY) -m dynadex.settings --readme docs/settings.md

bench: $(STAMP)
	$(PY) bench/run_all.py

# Re-resolve the pins (needs PyPI): edit the direct list below, then commit requirements.txt.
lock:
	rm -rf .venv-lock && $(PYTHON) -m venv .venv-lock
	.venv-lock/bin/pip install -q "apache-airflow[postgres]==3.3.2" "apache-airflow-providers-amazon[aiobotocore]==9.39.0" boto3 pyarrow \
	  "duckdb==1.5.5" "duckdb-extension-ducklake==1.5.5" "duckdb-extension-sqlite==1.5.5" \
	  "duckdb-extension-postgres==1.5.5" "duckdb-extension-httpfs==1.5.5" amazon-ion "moto[server]" \
	  "apache-airflow-providers-celery" "celery<5.7" psycopg2-binary
	{ sed -n '1,5p' requirements.txt; .venv-lock/bin/pip freeze --exclude-editable; } > requirements.txt.new
	mv requirements.txt.new requirements.txt && rm -rf .venv-lock

clean:
	rm -rf $(VENV) .dynadex .demo .airflow .pytest_cache .hypothesis

# docs/*.svg from the results kept in bench/results/ (matplotlib from requirements-bench.txt)
plots: $(STAMP)
	$(PY) -m pip install -q --disable-pip-version-check -r requirements-bench.txt
	$(PY) bench/plots.py
