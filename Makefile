# vaxcred — the two commands a fresh machine needs: `make demo` and `make test`.
PY ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
# uv itself lives in its own small environment, installed from a hash-pinned requirement file
TOOLS ?= .tools
UV := $(TOOLS)/bin/uv
STAMP := $(VENV)/.installed-$(shell cat uv.lock pyproject.toml | sha256sum | cut -c1-12)
PYTEST_WORKERS ?= 2
export UV_PYTHON_DOWNLOADS := never
export UV_PROJECT_ENVIRONMENT := $(VENV)

.PHONY: lock-exports demo demo-hsm test test-latest lock lint typecheck unit bench bench-hostile bench-hsm bench-pipeline bench-issuance bench-site-batches bench-site-signing bench-import-registry bench-import-barrier fuzz vectors clean sysdeps install bench-revocation bench-server oracles

$(UV): requirements/uv-bootstrap.txt
	$(PY) -m venv $(TOOLS)
	$(TOOLS)/bin/python -m pip install --quiet --require-hashes -r requirements/uv-bootstrap.txt
	touch $(UV)

# exactly the locked set (every transitive dependency pinned with hashes in uv.lock); fails if the lock is stale
$(STAMP): $(UV) uv.lock pyproject.toml
	$(UV) sync --locked --all-extras --python $(PY)
	rm -f $(VENV)/.installed-*
	touch $(STAMP)

install: $(STAMP)

## demo: key chain, one passport + QR + border check; then the national pipeline on 10,000 synthetic people (PEOPLE=…)
demo: $(STAMP)
	$(BIN)/python -m vaxcred.demo --out demo-out --people $(or $(PEOPLE),10000)

sysdeps:
	bash scripts/ensure_system_deps.sh

## demo-hsm: the demo with every key inside a throwaway SoftHSM2 token (demo-out-hsm/softhsm; PIN in the recipe)
demo-hsm: sysdeps $(STAMP)
	rm -rf demo-out-hsm && mkdir -p demo-out-hsm/softhsm/tokens
	printf 'directories.tokendir = %s\nobjectstore.backend = file\nlog.level = ERROR\n' "$(CURDIR)/demo-out-hsm/softhsm/tokens" > demo-out-hsm/softhsm/softhsm2.conf
	SOFTHSM2_CONF=demo-out-hsm/softhsm/softhsm2.conf softhsm2-util --init-token --free --label demo --pin 2468-1357 --so-pin 97531 >/dev/null
	SOFTHSM2_CONF=$(CURDIR)/demo-out-hsm/softhsm/softhsm2.conf VAXCRED_PKCS11_PIN=2468-1357 $(BIN)/python -m vaxcred.demo --out demo-out-hsm --people $(or $(PEOPLE),1000) \
	  --pkcs11 $$(ls /usr/lib/softhsm/libsofthsm2.so /usr/lib/*/softhsm/libsofthsm2.so 2>/dev/null | head -n 1) --token demo

## oracles: test oracles from npm, pinned by package-lock.json (certlogic-js, the CertLogic reference)
oracles: sysdeps
	@if command -v npm >/dev/null 2>&1; then \
	  npm ci --ignore-scripts --no-audit --no-fund --prefix tests/oracles/certlogic >/dev/null; \
	else echo "npm missing: the certlogic-js differential test is skipped"; fi

## test: install everything the tests need (Debian packages too, when missing) and run the whole suite
test: sysdeps $(STAMP) oracles
	$(BIN)/ruff check vaxcred tests scripts benchmarks
	$(BIN)/ruff format --check vaxcred tests scripts benchmarks
	$(BIN)/mypy
	$(BIN)/python -m pytest -n $(PYTEST_WORKERS) -q

lint: $(STAMP)
	$(BIN)/ruff check vaxcred tests scripts benchmarks
	$(BIN)/ruff format --check vaxcred tests scripts benchmarks

typecheck: $(STAMP)
	$(BIN)/mypy

## bench: one process, one core: raw cryptography vs vaxcred vs pycose vs python-cwt; verify with rules vs plain; then bench-cli
bench: $(STAMP)
	taskset -c 0 $(BIN)/python -m benchmarks.bench_core
	taskset -c 0 $(BIN)/python -m benchmarks.bench_rules
	$(MAKE) --no-print-directory bench-cli

## bench-hostile: worst-case time and memory of hostile inputs (text and images) through verify()
bench-hostile: $(STAMP)
	taskset -c 0 $(BIN)/python -m benchmarks.bench_hostile

## bench-hsm: ES256/PS256 signing and issuing with a key on a PKCS#11 token (throwaway SoftHSM2) vs in memory
bench-hsm: sysdeps $(STAMP)
	taskset -c 0 $(BIN)/python -m benchmarks.bench_hsm

## bench-issuance: issuance alone, CPU per passport (client; PostgreSQL server + pg_stat_statements), repeated
## on copies of one prepared database (PEOPLE=100000, BACKEND=sqlite|postgresql|both, WORKERS=2, REPEAT=2)
bench-issuance: sysdeps $(STAMP)
	PEOPLE="$(PEOPLE)" BACKEND="$(BACKEND)" WORKERS="$(WORKERS)" REPEAT="$(REPEAT)" $(BIN)/python -m benchmarks.bench_issuance

## bench-pipeline: the national pipeline end to end on generated people (PEOPLE=…, BACKEND=sqlite|postgresql|both,
## PG_SETTINGS="-c name=value …" for the throwaway server)
bench-pipeline: PEOPLE ?= 10000,100000,1000000
bench-pipeline: BACKEND ?= sqlite
bench-pipeline: sysdeps $(STAMP)
	PEOPLE=$(PEOPLE) BACKEND=$(BACKEND) $(BIN)/python -m benchmarks.bench_pipeline

## bench-site-batches: site signing per record, v1 vs batches of several sizes: sign, verify (issuance, cold), row bytes
bench-site-batches: $(STAMP)
	taskset -c 0 $(BIN)/python -m benchmarks.bench_site_batches --records 16384

## bench-site-signing: the site-signing stage alone, serial vs pipelined vs 2 workers, interleaved (PEOPLE=…,
## BACKEND=sqlite|postgresql|both, REPEAT=…): wall, client CPU, PostgreSQL server CPU and WAL per run
bench-site-signing: PEOPLE ?= 100000
bench-site-signing: BACKEND ?= both
bench-site-signing: sysdeps $(STAMP)
	PEOPLE=$(PEOPLE) BACKEND=$(BACKEND) $(BIN)/python -m benchmarks.bench_site_signing

## bench-import-registry: import + registry check alone, REPEAT rounds (PEOPLE=…, BACKEND=sqlite|postgresql|both):
## wall, pipeline CPU, PostgreSQL server CPU and WAL per stage, CPU µs per row
bench-import-registry: PEOPLE ?= 100000
bench-import-registry: BACKEND ?= postgresql
bench-import-registry: REPEAT ?= 2
bench-import-registry: sysdeps $(STAMP)
	PEOPLE=$(PEOPLE) BACKEND=$(BACKEND) REPEAT=$(REPEAT) $(BIN)/python -m benchmarks.bench_import_registry

## bench-import-barrier: the import's two PostgreSQL streams, how long each waits for the other at the per-batch
## barrier (PEOPLE=…): store, idle and barrier seconds per stream, the calling thread blocked
bench-import-barrier: PEOPLE ?= 100000
bench-import-barrier: sysdeps $(STAMP)
	PEOPLE=$(PEOPLE) $(BIN)/python -m benchmarks.bench_import_barrier

## bench-revocation: memory per entry, build and lookup time of ENTRIES revocation hashes (issue 8: 10 M <= 300 MB)
bench-revocation: ENTRIES ?= 10000000
bench-revocation: $(STAMP)
	taskset -c 0 $(BIN)/python -m benchmarks.bench_revocation --entries $(ENTRIES)

## bench-server: vaxcred serve --data (2 workers, published sync folder: trust list, VN rules, revocations) under a
## loopback load generator, a checked mix of valid, revoked, rule-failing, expired and forged passports; capacity,
## then latency at 80 % of it (DURATION seconds per phase); last line {"rps": …, "p50_ms": …, "p99_ms": …}
bench-server: $(STAMP)
	$(BIN)/python -m benchmarks.bench_server --duration $(or $(DURATION),15) --workers 2

## vectors: regenerate test_vectors/ deterministically (fixed keys and clock)
vectors: $(STAMP)
	$(BIN)/python scripts/make_test_vectors.py

## fuzz: longer hypothesis runs than make test
fuzz: $(STAMP)
	HYPOTHESIS_PROFILE=fuzz $(BIN)/python -m pytest -n $(PYTEST_WORKERS) -q -m slow tests

## lock: re-resolve uv.lock against the newest releases allowed by pyproject.toml (then run make test)
lock: $(UV)
	$(UV) lock --upgrade
	$(MAKE) --no-print-directory lock-exports

## lock-exports: pylock.toml (PEP 751) and requirements.lock (pip --require-hashes) written from uv.lock
lock-exports: $(UV)
	$(UV) export --locked --all-extras --format pylock.toml -o pylock.toml -q
	$(UV) export --locked --all-extras --format requirements.txt -o requirements.lock -q

## test-latest: the suite against the newest releases (not the lock), in a separate environment; not part of CI
test-latest: sysdeps $(UV)
	rm -rf .venv-latest
	$(UV) venv --python $(PY) .venv-latest
	VIRTUAL_ENV=.venv-latest $(UV) pip install --upgrade -e '.[test]'
	.venv-latest/bin/python -m pytest -n $(PYTEST_WORKERS) -q

clean:
	rm -rf $(VENV) .venv-latest $(TOOLS) demo-out .mypy_cache .pytest_cache .ruff_cache .hypothesis

# --- lean: CLI start-up benchmark and atheris fuzzing (issue 7 §3) -------------------------------------------
.PHONY: bench-cli fuzz-long

## bench-cli: median wall time of `vaxcred verify HC1 --dsc PEM` against `python -c "import vaxcred.verify"` (target <= 1.5x)
bench-cli: $(STAMP)
	taskset -c 0 $(BIN)/python -m benchmarks.bench_cli --importtime

## fuzz-long: every atheris target for FUZZ_SECONDS each (default 600), corpus kept in .fuzz/corpus/<target>,
## findings in .fuzz/artifacts/ (replay: .venv/bin/python -m tests.fuzz.run TARGET FILE); see docs/security.md
FUZZ_SECONDS ?= 600
FUZZ_TARGETS ?= verify hc1_cose hc1_claims base45 zlib cbor cose cwt trust_gateway trust_signed trust_signed_payload x509_dsc revocation_batch certlogic rules_gateway
fuzz-long: $(STAMP)
	mkdir -p .fuzz/artifacts
	set -e; for t in $(FUZZ_TARGETS); do \
	  echo "== $$t ($(FUZZ_SECONDS) s)"; \
	  $(BIN)/python -m tests.fuzz.run $$t -max_total_time=$(FUZZ_SECONDS) -timeout=10 -rss_limit_mb=2048 \
	    -print_final_stats=1 -artifact_prefix=.fuzz/artifacts/$$t- .fuzz/corpus/$$t; \
	done
	rm -rf $(VENV) .venv-latest $(TOOLS) demo-out demo-out-hsm .mypy_cache .pytest_cache .ruff_cache .hypothesis
