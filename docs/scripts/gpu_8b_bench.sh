#!/usr/bin/env bash
# NOT YET RUN (no GPU was lent to the session that wrote it). One prepared GPU check, <= 10 minutes:
# a random-initialised Qwen3-VL-8B in bfloat16 (nothing downloaded), `bench capture` (ours: full
# capture into a session, vs stock SDPA generate) and `bench discovery` (ours: batched last-row
# capture, vs the authors' eager output_attentions), each writing its JSON record under $OUT.
# Usage on the GPU box, from the repository root:  OUT=/tmp/out bash docs/scripts/gpu_8b_bench.sh
set -euo pipefail
OUT=${OUT:-gpu-bench}
mkdir -p "$OUT"
nvidia-smi --query-gpu=name,memory.total,memory.used --format=csv > "$OUT/gpu.csv" || true
timeout 240 gaze-explorer bench capture --device cuda --random-init Qwen3-VL-8B-Instruct \
    --tokens 200 --repeats 3 --json "$OUT/capture-8b.json" 2>&1 | tail -20
timeout 240 gaze-explorer bench discovery --device cuda --random-init Qwen3-VL-8B-Instruct \
    --strips 4 --repeats 3 --json "$OUT/discovery-8b.json" 2>&1 | tail -20
