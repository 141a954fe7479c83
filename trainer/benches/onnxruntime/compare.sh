#!/usr/bin/env bash
# onnxruntime cross-check and tract latency of crosskd's ONNX exports.
#
#   trainer/benches/onnxruntime/compare.sh            # default tract kernels
#   TRACT_CPU_ISA=-avx2 trainer/benches/onnxruntime/compare.sh
#   CROSSKD_ORT_CKPT=work_dirs/x/best.ckpt CROSSKD_ORT_CALIB=synth/val \
#     trainer/benches/onnxruntime/compare.sh          # + a trained checkpoint
#
# Needs `pip install onnxruntime numpy` (measurement only, not a product dependency).
# Environment: OUT (target/tmp/ort), ITERS (10), PYTHON (python3).
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../../.." && pwd)"
cd "$ROOT"
export CROSSKD_ORT_DIR="${OUT:-$ROOT/target/tmp/ort}"
export CROSSKD_ORT_ITERS="${ITERS:-10}"
cargo test -p crosskd-trainer --test export_ort -- --ignored --nocapture
"${PYTHON:-python3}" "$ROOT/trainer/benches/onnxruntime/compare.py" "$CROSSKD_ORT_DIR" "$CROSSKD_ORT_ITERS"
