"""GPU memory the load generator shares with Triton: cudaMalloc'd buffers exported as CUDA IPC
handles (Triton's CUDA shared memory), through the CUDA runtime library by ctypes, so no CUDA
Python package is needed."""
from __future__ import annotations

import ctypes
import ctypes.util
import glob
import os
import sys

from tuner.errors import ConfigError

_H2D = 1  # cudaMemcpyHostToDevice
IPC_HANDLE_BYTES = 64  # sizeof(cudaIpcMemHandle_t)


def _candidates() -> list[str]:
    """libcudart from the CUDA runtime wheels (torch's, nvidia-cuda-runtime), then the system's."""
    found = []
    for site in sys.path:
        for pattern in ("nvidia/cu*/lib/libcudart.so*", "nvidia/cuda_runtime/lib/libcudart.so*"):
            found += sorted(glob.glob(os.path.join(site, pattern)), reverse=True)
    system = ctypes.util.find_library("cudart")
    return found + ([system] if system else []) + ["/usr/local/cuda/lib64/libcudart.so"]


def _load() -> ctypes.CDLL:
    for path in _candidates():
        try:
            return ctypes.CDLL(path)
        except OSError:
            continue
    raise ConfigError("--shared-memory cuda needs the CUDA runtime (libcudart): install a CUDA build of "
                      "torch or nvidia-cuda-runtime, or use --shared-memory system")


class Runtime:
    """The few CUDA runtime calls CUDA shared memory needs."""

    def __init__(self) -> None:
        self.lib = _load()
        count = ctypes.c_int(0)
        if self.lib.cudaGetDeviceCount(ctypes.byref(count)) != 0 or count.value == 0:
            raise ConfigError("--shared-memory cuda: no CUDA device is visible here; use --shared-memory system")

    def _check(self, code: int, call: str) -> None:
        if code != 0:
            self.lib.cudaGetErrorString.restype = ctypes.c_char_p
            raise RuntimeError(f"{call} failed: {self.lib.cudaGetErrorString(code).decode()}")

    def allocate(self, size: int, device: int) -> tuple[int, bytes]:
        """A device buffer of `size` bytes on `device`: (pointer, its IPC handle)."""
        self._check(self.lib.cudaSetDevice(device), "cudaSetDevice")
        pointer, handle = ctypes.c_void_p(), ctypes.create_string_buffer(IPC_HANDLE_BYTES)
        self._check(self.lib.cudaMalloc(ctypes.byref(pointer), ctypes.c_size_t(size)), "cudaMalloc")
        self._check(self.lib.cudaIpcGetMemHandle(handle, pointer), "cudaIpcGetMemHandle")
        return pointer.value or 0, handle.raw

    def upload(self, pointer: int, data: bytes) -> None:
        self._check(self.lib.cudaMemcpy(ctypes.c_void_p(pointer), data, ctypes.c_size_t(len(data)), _H2D), "cudaMemcpy")

    def free(self, pointer: int) -> None:
        self.lib.cudaFree(ctypes.c_void_p(pointer))
