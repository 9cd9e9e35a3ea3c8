# Argus: the two commands of the quick start, and a few helpers.
#
#   make run    set up what is missing, start local Redis + Kafka broker, run Argus on the sample video
#   make test   set up what is missing, start test Redis + broker, run every test, stop them again
#   make stop   stop the local services `make run` started
SHELL := /bin/bash
ENV := source deploy/env.sh
export CARGO_TERM_COLOR ?= auto

.PHONY: run test setup build stop lint

setup:
	@deploy/setup.sh

# The dev profile (dependencies optimised, see Cargo.toml) is the one `make test` builds, so
# `make run` after `make test` starts at once instead of compiling everything again.
build: setup
	@$(ENV) && cargo build -p argus-pipeline --bin argus

run: build
	@deploy/services.sh start local
	@deploy/print-where-results-go.sh
	@$(ENV) && export ARGUS_CAPTIONS__ENABLED=$${ARGUS_CAPTIONS__ENABLED:-true} && exec ./target/debug/argus run $(ARGS)

test: setup
	@deploy/run-tests.sh

lint: setup
	@$(ENV) && cargo fmt --all --check && cargo clippy --workspace --all-targets -- -D warnings

stop:
	@deploy/services.sh stop local
