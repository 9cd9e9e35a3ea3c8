#!/usr/bin/env bash
# Offline checks of the operations files: the Prometheus alert rules and their unit tests, the
# Grafana dashboards, the Prometheus config, docker compose, the Dockerfile, the Kubernetes
# manifests, and the Argus configurations they carry. Needs no network, no Docker daemon and no
# cluster; changes nothing in the tree (scratch files go to a temporary folder), so it can run
# any number of times. Tools come from deploy/setup.sh (apt: prometheus for promtool,
# docker-compose; venv: kubernetes-validate, dockerfile), which it runs if one is missing.
#
#   deploy/check-deploy.sh
#   ARGUS_BIN=target/debug/argus deploy/check-deploy.sh   also has Argus itself load the configs
#                                                          of the image and of Kubernetes
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(cd "$here/.." && pwd)"
cd "$root"
# shellcheck source=deploy/env.sh
source "$here/env.sh"

log() { printf '\033[1m[check-deploy]\033[0m %s\n' "$*" >&2; }
section() { printf '== %s\n' "$*"; }
started=$SECONDS

# Kubernetes versions the manifests must be valid for: the oldest we support and the newest the
# pinned kubernetes-validate knows.
K8S_VERSIONS=(1.30 1.37)

tools_ready() {
  command -v promtool >/dev/null &&
    { docker compose version >/dev/null 2>&1 || command -v docker-compose >/dev/null; } &&
    [ -x "$ARGUS_VENV/bin/kubernetes-validate" ] &&
    "$ARGUS_VENV/bin/python" -c 'import dockerfile, yaml' 2>/dev/null
}
if ! tools_ready; then
  log "promtool, docker compose or the venv's validators are missing: running deploy/setup.sh"
  "$here/setup.sh"
  # shellcheck source=deploy/env.sh
  source "$here/env.sh"
  tools_ready || { log "still missing after deploy/setup.sh: promtool, docker-compose or kubernetes-validate"; exit 1; }
fi
python="$ARGUS_VENV/bin/python"
check() { "$python" "$here/check_deploy.py" "$@"; }

scratch="$(mktemp -d)"
trap 'rm -rf "$scratch"' EXIT

section "alert rules (dashboards/alerts)"
promtool check rules dashboards/alerts/argus-rules.yml
# promtool resolves rule_files relative to the test file.
promtool test rules dashboards/alerts/argus-rules.test.yml
check alert-tests

section "dashboards"
check dashboards "$scratch/dashboard-queries.yml"
# promtool parses every query of every panel and variable (written as recording rules).
promtool check rules "$scratch/dashboard-queries.yml" >/dev/null || {
  promtool check rules "$scratch/dashboard-queries.yml" || true
  log "a dashboard query is not valid PromQL (the group names the dashboard, the record its panel)"
  exit 1
}
echo "  ok: every dashboard query is valid PromQL"
check metrics

section "Prometheus config (deploy/prometheus)"
# The container layout of docker-compose.yml: the config, and the rules mounted beside it.
mkdir -p "$scratch/prometheus/rules"
cp deploy/prometheus/prometheus.yml "$scratch/prometheus/"
cp dashboards/alerts/*.yml "$scratch/prometheus/rules/"
promtool check config "$scratch/prometheus/prometheus.yml"

section "docker compose (deploy/docker-compose.yml)"
# `config` resolves and validates the file without a Docker daemon. Docker's Compose v2 plugin
# when it is there; else Debian's docker-compose 1.29 (the docker CLI here has no compose
# plugin, and Debian 12 packages no v2), which validates against its own Compose schema.
if docker compose version >/dev/null 2>&1; then
  compose=(docker compose)
else
  compose=(docker-compose)
fi
echo "  with: $("${compose[@]}" version | head -n 1)"
"${compose[@]}" -f deploy/docker-compose.yml config -q
"${compose[@]}" -f deploy/docker-compose.yml config >"$scratch/compose.yml"
check compose "$scratch/compose.yml"

section "Dockerfile (deploy/Dockerfile)"
check dockerfile

section "Kubernetes manifests (deploy/k8s)"
manifests=()
for manifest in deploy/k8s/*.yaml; do
  [ "$(basename "$manifest")" = kustomization.yaml ] || manifests+=("$manifest")
done
for version in "${K8S_VERSIONS[@]}"; do
  # --strict: unknown fields (typos) are errors too. The schemas ship inside the package.
  "$ARGUS_VENV/bin/kubernetes-validate" --strict --quiet --kubernetes-version "$version" "${manifests[@]}"
  echo "  ok: ${#manifests[@]} manifests valid for Kubernetes $version"
done
check kustomization

section "Argus configurations (image, Kubernetes)"
configs="$(check argus-configs "$scratch/argus")"
if [ -n "${ARGUS_BIN:-}" ]; then
  while IFS=$'\t' read -r file env_vars; do
    # shellcheck disable=SC2086 # env_vars is NAME=VALUE words without blanks (check_deploy.py ensures it)
    if ! output="$(env -u ARGUS_CONFIG $env_vars "$ARGUS_BIN" --config "$file" config 2>&1)"; then
      echo "$output" >&2
      log "Argus ($ARGUS_BIN) refuses the configuration of $(basename "$file" .toml) (environment: $(sed -E 's/=[^ ]*//g' <<<"$env_vars"))"
      exit 1
    fi
    echo "  ok: $ARGUS_BIN loads the $(basename "$file" .toml) configuration"
  done <<<"$configs"
else
  echo "  ok: valid TOML (set ARGUS_BIN to a built argus to have it load them too)"
fi

echo "deploy checks passed in $((SECONDS - started)) s"
