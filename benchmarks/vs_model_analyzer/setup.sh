#!/usr/bin/env bash
# Installs NVIDIA Triton Model Analyzer 1.58.0 beside the tuner, against the same server binary:
# a venv ($MA_VENV, default /tmp/ma-venv) with triton-model-analyzer, tritonclient[all]==2.51.0
# (its wheel carries perf_analyzer 2.51.0) and nvidia-pytriton==0.7.0 (the same tritonserver 2.51.0
# the tuner's embedded launcher runs), plus what the demo detector imports (onnxruntime, onnx);
# wrappers in $MA_WORK/bin set the library paths, and $MA_WORK/backends holds the python backend and
# the tuner's built ONNX Runtime backend (run `python -m tuner backends build onnxruntime` first;
# TUNER_PYTHON: the tuner's interpreter). Recipe from ../shared/peers (setup_peer.sh).
# Root only for apt (Debian libb64-0d, which perf_analyzer links).
set -euo pipefail
MA_VENV=${MA_VENV:-/tmp/ma-venv}
MA_WORK=${MA_WORK:-/tmp/ma}
PYTHON=${PYTHON:-python3}

dpkg -s libb64-0d >/dev/null 2>&1 || { apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q libb64-0d; }
[ -x "$MA_VENV/bin/python" ] || "$PYTHON" -m venv "$MA_VENV"
"$MA_VENV/bin/pip" install -q nvidia-pytriton==0.7.0
# pinned together: nvidia-pytriton alone would bring a newer tritonclient without perf_analyzer 2.51
"$MA_VENV/bin/pip" install -q triton-model-analyzer==1.58.0 "tritonclient[all]==2.51.0" "numpy<2" onnx onnxruntime

SITE=$("$MA_VENV/bin/python" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')
PYVER=$("$MA_VENV/bin/python" -c 'import sys; print(f"{sys.version_info[0]}.{sys.version_info[1]}")')
ROOT="$SITE/pytriton/tritonserver"
mkdir -p "$MA_WORK/bin" "$MA_WORK/lib" "$MA_WORK/backends"
ln -sf "$(ls "$SITE"/nvidia_pytriton.libs/libcudart-*.so.12* | head -1)" "$MA_WORK/lib/libcudart.so.12"
rm -rf "$MA_WORK/backends/python"
cp -r "$ROOT/backends/python" "$MA_WORK/backends/python"
cp "$ROOT/python_backend_stubs/$PYVER/triton_python_backend_stub" "$MA_WORK/backends/python/"
LIBDIR=$("$MA_VENV/bin/python" -c 'import sysconfig; print(sysconfig.get_config_var("LIBDIR"))')
cat > "$MA_WORK/bin/tritonserver" <<WRAP
#!/usr/bin/env bash
export LD_LIBRARY_PATH="$SITE/nvidia_pytriton.libs:$LIBDIR\${LD_LIBRARY_PATH:+:\$LD_LIBRARY_PATH}"
export PATH="$MA_VENV/bin:\$PATH"
exec "$ROOT/bin/tritonserver" "\$@"
WRAP
cat > "$MA_WORK/bin/perf_analyzer" <<WRAP
#!/usr/bin/env bash
export LD_LIBRARY_PATH="$MA_WORK/lib\${LD_LIBRARY_PATH:+:\$LD_LIBRARY_PATH}"
exec "$MA_VENV/bin/perf_analyzer" "\$@"
WRAP
chmod +x "$MA_WORK/bin/tritonserver" "$MA_WORK/bin/perf_analyzer"
# the demo is an ONNX Runtime model: Model Analyzer's server gets the same backend the tuner built
ORT=$("${TUNER_PYTHON:-python3}" -c 'from tuner import backends; print(backends.built()["onnxruntime"] / "onnxruntime")')
ln -sfn "$ORT" "$MA_WORK/backends/onnxruntime"
"$MA_VENV/bin/model-analyzer" --help > /dev/null && echo "model-analyzer ready: $MA_VENV, wrappers in $MA_WORK/bin"
