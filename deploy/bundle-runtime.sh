#!/usr/bin/env bash
# Gathers what a built `argus` binary needs at run time besides Debian packages, so that a
# machine (or the runtime stage of deploy/Dockerfile) without the Python venv can run it:
#
#   OUT/bin/argus                the binary, debug info stripped
#   OUT/lib/                     the shared libraries it links from the venv (libtorch and the
#                                CUDA runtime stubs libtorch_cpu links), and ONNX Runtime, which
#                                `ort` loads at run time (libonnxruntime.so -> the versioned file)
#   OUT/models/NAME/             the models named in ARGUS_BUNDLE_MODELS (folders of
#                                $ARGUS_MODEL_DIR; default "pp-ocrv4 all-minilm-l6-v2 coco-detectors", the ones the service
#                                loads; "all" for every model deploy/setup.sh fetched)
#   OUT/debian-packages.txt      the Debian packages owning every other library it links
#
# Run it where deploy/setup.sh has run (it sources deploy/env.sh). Then the binary runs with
#   LD_LIBRARY_PATH=OUT/lib ORT_DYLIB_PATH=OUT/lib/libonnxruntime.so ARGUS_MODEL_DIR=OUT/models
#
#   deploy/bundle-runtime.sh target/release/argus /bundle
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
# shellcheck source=deploy/env.sh
source "$here/env.sh"

log() { printf '\033[1m[bundle]\033[0m %s\n' "$*" >&2; }
die() { log "$*"; exit 1; }

[ $# -eq 2 ] || die "usage: $0 BINARY OUT"
binary="$1" out="$2"
[ -x "$binary" ] || die "$binary is not an executable"
if [ -z "${ORT_DYLIB_PATH:-}" ] || [ ! -f "$ORT_DYLIB_PATH" ]; then
  die "ONNX Runtime not found in the venv (run deploy/setup.sh)"
fi
venv="$(realpath "$ARGUS_VENV")"

rm -rf "$out"
mkdir -p "$out/bin" "$out/lib" "$out/models"

# The Debian package that ships a library (dpkg knows some by their /usr-merged twin path).
owner() {
  local path="$1" candidate
  for candidate in "$path" "$(realpath "$path")" "${path#/usr}" "/usr$path"; do
    dpkg-query -S "$candidate" 2>/dev/null | head -n 1 | cut -d: -f1 && return 0
  done
  return 1
}

packages=()
take_libraries() {   # copy the venv libraries an object links; note the packages of the others
  local object="$1" name path
  if ldd "$object" | grep -q 'not found'; then
    ldd "$object" | grep 'not found' >&2
    die "$object links libraries that are not found"
  fi
  while read -r name path; do
    case "$(realpath "$path")" in
      "$venv"/*) cp -L "$path" "$out/lib/$name" ;;
      *) packages+=("$(owner "$path")") || die "no Debian package owns $path (needed by $object)" ;;
    esac
  done < <(ldd "$object" | awk '$2 == "=>" && $3 ~ /^\// { print $1, $3 }')
}

take_libraries "$binary"
cp "$binary" "$out/bin/argus"
strip --strip-debug "$out/bin/argus"

ort_dir="$(dirname "$ORT_DYLIB_PATH")" ort_name="$(basename "$ORT_DYLIB_PATH")"
cp -L "$ORT_DYLIB_PATH" "$out/lib/$ort_name"
ln -sf "$ort_name" "$out/lib/libonnxruntime.so"
[ ! -f "$ort_dir/libonnxruntime_providers_shared.so" ] || cp -L "$ort_dir/libonnxruntime_providers_shared.so" "$out/lib/"
take_libraries "$ORT_DYLIB_PATH"

models="${ARGUS_BUNDLE_MODELS:-pp-ocrv4 all-minilm-l6-v2 coco-detectors}"
if [ "$models" = all ]; then
  models="$(cd "$ARGUS_MODEL_DIR" && ls)"
fi
for model in $models; do
  [ -d "$ARGUS_MODEL_DIR/$model" ] || die "model folder $ARGUS_MODEL_DIR/$model is missing (run deploy/setup.sh)"
  cp -r "$ARGUS_MODEL_DIR/$model" "$out/models/"
done

printf '%s\n' "${packages[@]}" | sort -u >"$out/debian-packages.txt"
log "bundled into $out: $(du -sh "$out/lib" | cut -f1) of libraries, models: ${models//$'\n'/ }, Debian packages: $(tr '\n' ' ' <"$out/debian-packages.txt")"
