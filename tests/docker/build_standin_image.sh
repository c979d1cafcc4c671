#!/usr/bin/env bash
# Builds a local stand-in for the NGC image nvcr.io/nvidia/tritonserver:<version>-py3, for tests on
# machines that reach no image registry: a Debian bookworm root filesystem (debootstrap, through the
# Debian mirror) with Python 3.11 and numpy, plus the Triton 2.51 server, libraries and python
# backend from the nvidia-pytriton wheel, laid out as in the NGC image:
#   /opt/tritonserver/bin/tritonserver (on PATH), /opt/tritonserver/backends/python, libs on LD_LIBRARY_PATH
#
#   usage: build_standin_image.sh TAG [PYTHON]   (root; needs debootstrap and a running Docker engine)
# PYTHON is an interpreter with nvidia-pytriton installed (default: python3).
set -euo pipefail
TAG=${1:?image tag}
PYTHON=${2:-python3}
WORK=$(mktemp -d /tmp/tuner-standin.XXXXXX)
trap 'rm -rf "$WORK"' EXIT

SITE=$("$PYTHON" -c 'import pytriton, pathlib; print(pathlib.Path(pytriton.__file__).parent.parent)')
ROOTFS="$WORK/rootfs"
debootstrap --variant=minbase --include=python3,python3-numpy,libpython3.11 bookworm "$ROOTFS" \
  "${DEBIAN_MIRROR:-http://deb.debian.org/debian}" > "$WORK/debootstrap.log" 2>&1 \
  || { tail -20 "$WORK/debootstrap.log" >&2; exit 1; }
rm -rf "$ROOTFS"/var/cache/apt/archives/*.deb "$ROOTFS"/var/lib/apt/lists/*

OPT="$ROOTFS/opt/tritonserver"
mkdir -p "$OPT/bin" "$OPT/backends"
cp "$SITE/pytriton/tritonserver/bin/tritonserver" "$OPT/bin/"
cp -r "$SITE/nvidia_pytriton.libs" "$OPT/lib"
cp -r "$SITE/pytriton/tritonserver/backends/python" "$OPT/backends/python"
cp "$SITE/pytriton/tritonserver/python_backend_stubs/3.11/triton_python_backend_stub" "$OPT/backends/python/"

tar -C "$ROOTFS" -c . | docker import \
  --change 'ENV PATH=/opt/tritonserver/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
  --change 'ENV LD_LIBRARY_PATH=/opt/tritonserver/lib' \
  --change 'WORKDIR /opt/tritonserver' \
  - "$TAG" > /dev/null
echo "built $TAG"
