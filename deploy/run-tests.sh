#!/usr/bin/env bash
# Every test of Argus: formatting and lints, unit tests, operator tests on the shipped models,
# and the end-to-end tests against a real Kafka-protocol broker and a real Redis, which this
# script starts on their own ports (19092, 16379) and stops again.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
cd "$here/.."
"$here/setup.sh"
# shellcheck source=deploy/env.sh
source "$here/env.sh"

# A fresh broker and Redis for every run: tests never see another run's messages.
"$here/services.sh" stop test >/dev/null 2>&1 || true
"$here/services.sh" start test
trap '"$here/services.sh" stop test' EXIT
export ARGUS_TEST_KAFKA_BROKERS="127.0.0.1:${ARGUS_KAFKA_PORT:-19092}"
export ARGUS_TEST_REDIS_URL="redis://127.0.0.1:${ARGUS_REDIS_PORT:-16379}"
export ARGUS_TEST_ARTIFACTS="${ARGUS_TEST_ARTIFACTS:-$PWD/target/test-artifacts}"

echo "== fresh-machine checks (empty cache, shellcheck)"
"$here/check-fresh.sh"

echo "== layering of pipeline/src (no import cycle, no import up the order in lib.rs)"
python3 "$here/check-layers.py" --self-test
python3 "$here/check-layers.py" pipeline/src

echo "== format and lints"
cargo fmt --all --check
cargo clippy --workspace --all-targets --quiet -- -D warnings

echo "== tests"
cargo build --quiet -p argus-pipeline --bin argus
export ARGUS_BIN="$PWD/target/debug/argus"
status=0
echo "== deploy files, dashboards and alert rules (offline checks)"
"$here/check-deploy.sh" || status=1
cargo test --workspace --exclude argus-e2e --no-fail-fast || status=1
# One at a time: they start real pipelines and time recoveries, which a 2-core machine running
# several of them at once would distort.
cargo test -p argus-e2e --no-fail-fast -- --test-threads=1 || status=1
exit $status
