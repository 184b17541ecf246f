#!/usr/bin/env bash
# `pip check`, with the one documented exception: rapidocr-onnxruntime declares the
# GUI opencv-python; opencv-python-headless provides the same cv2 (requirements-ocr.txt).
set -uo pipefail
out=$("$1" -m pip check 2>&1)
rest=$(printf '%s\n' "$out" | grep -v -E '^rapidocr-onnxruntime [0-9.]+ requires opencv-python, which is not installed\.$|^No broken requirements found\.$' || true)
if [ -n "$rest" ]; then printf '%s\n' "$rest" >&2; exit 1; fi
