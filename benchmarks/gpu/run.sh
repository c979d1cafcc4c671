#!/usr/bin/env bash
# On the lent GPU machine (no network): install the carried wheels, report the environment, then
# run gpu_study.py with the given arguments. From the repository root, with .whl carried:
#   bash benchmarks/gpu/run.sh calibrate --widths 8,16,32
#   bash benchmarks/gpu/run.sh search --width 16 --trials 30
#   bash benchmarks/gpu/run.sh parallel --width 32 --trials 50     (parallel.py: workers across GPUs)
#   bash benchmarks/gpu/run.sh libtorch --trials 25 --width 32     (libtorch_study.py: the PyTorch backend)
# The PyTorch backend is built here against the machine's torch: carry the pinned sources and the
# RapidJSON headers in .gpu/ (sources/*.tar.gz, rapidjson.tgz).
# Wheels (.whl/, made on the development machine, see the device tool's README):
#   nvidia-pytriton==0.7.0, tritonclient==2.51.0 (repacked without perf_analyzer to fit the carry
#   limit), optuna, alembic, sqlalchemy, colorlog, mako, python-rapidjson -- for cp312 (61 MB).
set -euo pipefail
export OUT=${OUT:-/tmp/gpu_out}
mkdir -p "$OUT"
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl
export PYTHONPATH=/tmp/site:$PWD PYTHONUNBUFFERED=1
export NCCL_NVLS_ENABLE=0 TORCH_SYMM_MEM_DISABLE_MULTICAST=1 NVSHMEM_DISABLE_NVLS=1 PATH=/tmp/site/bin:/usr/local/cuda/bin:$PATH
if [ -f .gpu/rapidjson.tgz ]; then
  mkdir -p /tmp/rj && tar -xzf .gpu/rapidjson.tgz -C /tmp/rj && export CPATH=/tmp/rj${CPATH:+:$CPATH}
  export TUNER_BACKEND_SOURCES=$PWD/.gpu TUNER_BACKENDS=/tmp/tuner_backends
fi
{
  nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader
  python3 -c "import sys, torch, numpy, onnxruntime as ort; print(sys.version.split()[0], 'torch', torch.__version__, 'cuda', torch.cuda.is_available(), 'numpy', numpy.__version__, 'onnxruntime', ort.__version__, ort.get_available_providers())"
  nproc
} 2>&1 | tee "$OUT/env.txt"
if [ "${1:-}" = parallel ]; then
  shift
  python3 benchmarks/gpu/parallel.py "$@" --out "$OUT" 2>&1 | tee "$OUT/log.txt"
elif [ "${1:-}" = libtorch ]; then
  shift
  python3 benchmarks/gpu/libtorch_study.py "$@" --out "$OUT" 2>&1 | tee "$OUT/log.txt"
else
  python3 benchmarks/gpu/gpu_study.py "$@" --out "$OUT" 2>&1 | tee "$OUT/log.txt"
fi
