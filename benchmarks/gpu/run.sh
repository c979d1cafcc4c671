#!/usr/bin/env bash
# On the lent GPU machine (no network): install the carried wheels, report the environment, then
# run gpu_study.py with the given arguments. From the repository root, with .whl carried:
#   bash benchmarks/gpu/run.sh calibrate --widths 8,16,32
#   bash benchmarks/gpu/run.sh search --width 16 --trials 30
#   bash benchmarks/gpu/run.sh parallel --width 32 --trials 50     (parallel.py: workers across GPUs)
# Wheels (.whl/, made on the development machine, see the device tool's README):
#   nvidia-pytriton==0.7.0, tritonclient==2.51.0 (repacked without perf_analyzer to fit the carry
#   limit), optuna, alembic, sqlalchemy, colorlog, mako, python-rapidjson -- for cp312.
set -euo pipefail
export OUT=${OUT:-/tmp/gpu_out}
mkdir -p "$OUT"
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl
export PYTHONPATH=/tmp/site:$PWD PYTHONUNBUFFERED=1
{
  nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader
  python3 -c "import sys, torch, numpy, onnxruntime as ort; print(sys.version.split()[0], 'torch', torch.__version__, 'cuda', torch.cuda.is_available(), 'numpy', numpy.__version__, 'onnxruntime', ort.__version__, ort.get_available_providers())"
  nproc
} 2>&1 | tee "$OUT/env.txt"
if [ "${1:-}" = parallel ]; then
  shift
  python3 benchmarks/gpu/parallel.py "$@" --out "$OUT" 2>&1 | tee "$OUT/log.txt"
else
  python3 benchmarks/gpu/gpu_study.py "$@" --out "$OUT" 2>&1 | tee "$OUT/log.txt"
fi
