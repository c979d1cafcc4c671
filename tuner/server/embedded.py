"""The embedded launcher: the tritonserver binary shipped in the `nvidia-pytriton` wheel.

Why it works without a container: the wheel carries Triton 2.51 (`pytriton/tritonserver/bin`),
its shared libraries (`nvidia_pytriton.libs`), the python backend and one backend stub per Python
version. We assemble a backend directory with the stub of the running interpreter and start the
server with this environment's `bin/` first on PATH, so python models import our packages.
"""
from __future__ import annotations

import contextlib
import ctypes
import importlib.util
import os
import shutil
import signal
import socket
import subprocess
import sys
import sysconfig
import time
from pathlib import Path

from tuner import backends
from tuner.errors import ServerError
from tuner.server.base import SHM_PREFIX, Server, pid_alive, tree_rss_mib
from tuner.server.client import TritonControl

_PR_SET_PDEATHSIG = 1
_PRCTL = ctypes.CDLL(None, use_errno=True).prctl  # resolved here: the child must not dlopen after fork
STOP_GRACE_S = 3.0  # python models unload in about 1 s; the C++ backends at once
START_ATTEMPTS = 3  # a free port taken by another process before the server bound it: new ports
_PID_FILE = "tritonserver.pid"  # in the run dir: "<server pid> <tuner pid>", for the next start to clean up


def _die_with_parent() -> None:
    """Runs in the child before exec: the kernel sends SIGTERM to tritonserver if the tuner dies,
    even by SIGKILL (what is left then, the next start removes)."""
    _PRCTL(_PR_SET_PDEATHSIG, signal.SIGTERM)


def free_ports(count: int) -> list[int]:
    """`count` distinct free ports of the loopback: all held at once while they are chosen, since a
    port let go may be the next one handed out (a server given one port twice does not start)."""
    with contextlib.ExitStack() as held:
        sockets = [held.enter_context(socket.socket(socket.AF_INET, socket.SOCK_STREAM)) for _ in range(count)]
        for s in sockets:
            s.bind(("127.0.0.1", 0))
        return [s.getsockname()[1] for s in sockets]


def free_port() -> int:
    return free_ports(1)[0]


_SYSTEM_LIB_DIRS = {"/lib", "/lib64", "/usr/lib", "/usr/lib64", "/usr/lib/x86_64-linux-gnu",
                    "/usr/lib/aarch64-linux-gnu"}


def _gpu_count() -> int:
    """GPUs the server will see (0 without a driver): each gets its own CUDA memory pool size."""
    if shutil.which("nvidia-smi") is None:
        return 0
    try:
        done = subprocess.run(["nvidia-smi", "-L"], capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.TimeoutExpired):
        return 0
    return sum(line.startswith("GPU ") for line in done.stdout.splitlines()) if done.returncode == 0 else 0


def triton_dist() -> tuple[Path, Path]:
    """(tritonserver root, shared-library folder) inside the installed nvidia-pytriton wheel."""
    spec = importlib.util.find_spec("pytriton")
    if spec is None or not spec.submodule_search_locations:
        raise ServerError("the embedded launcher needs the 'nvidia-pytriton' package: "
                          "pip install nvidia-pytriton==0.7.0")
    pkg = Path(next(iter(spec.submodule_search_locations)))
    root, libs = pkg / "tritonserver", pkg.parent / "nvidia_pytriton.libs"
    if not (root / "bin" / "tritonserver").exists():
        raise ServerError(f"no tritonserver binary in {root / 'bin'}: reinstall nvidia-pytriton==0.7.0")
    return root, libs


def prepare_backends(dest: Path, folders: dict[str, Path] | None = None) -> Path:
    """A backend directory holding the python backend with the stub for this interpreter, and every
    C++ backend built for the installed libraries (`python -m tuner backends build`), or `folders`."""
    root, _ = triton_dist()
    version = f"{sys.version_info.major}.{sys.version_info.minor}"
    stub = root / "python_backend_stubs" / version / "triton_python_backend_stub"
    if not stub.exists():
        raise ServerError(f"nvidia-pytriton has no python backend stub for Python {version} ({stub})")
    python_dir = dest / "python"
    if python_dir.exists():
        shutil.rmtree(python_dir)
    shutil.copytree(root / "backends" / "python", python_dir)
    shutil.copy2(stub, python_dir / "triton_python_backend_stub")
    for name, folder in (backends.built() if folders is None else folders).items():
        link = dest / name
        if link.is_symlink():
            link.unlink()
        elif link.exists():
            shutil.rmtree(link)
        link.symlink_to(folder / name, target_is_directory=True)
    return dest


class EmbeddedServer(Server):
    """Starts tritonserver in explicit model-control mode on free loopback ports.

    Use as a context manager: the server is stopped on exit, on exceptions and on Ctrl-C.
    """

    launcher = "embedded"

    def __init__(self, model_repository: Path, run_dir: Path, host: str = "127.0.0.1",
                 extra_args: tuple[str, ...] = (), ready_timeout_s: float = 120.0,
                 backend_folders: dict[str, Path] | None = None, gpus: str | tuple[str, ...] | None = None,
                 auto_complete: bool = True):
        self.model_repository = Path(model_repository)
        self.run_dir = Path(run_dir)
        self.host = host
        self.extra_args = extra_args
        self.ready_timeout_s = ready_timeout_s
        self.backend_folders = backend_folders  # default: every built backend
        self.gpus = gpus  # "all", device ids, or None: whatever the tuner sees
        self.auto_complete = auto_complete  # off where it can change no model's config (tuner.config.autocomplete)
        self.log_path = self.run_dir / "tritonserver.log"
        self.process: subprocess.Popen | None = None
        self.grpc_port = self.http_port = self.metrics_port = 0

    @property
    def url(self) -> str:
        return f"{self.host}:{self.grpc_port}"

    def command(self) -> list[str]:
        root, _ = triton_dist()
        return [str(root / "bin" / "tritonserver"),
                f"--model-repository={self.model_repository}",
                f"--backend-directory={self.run_dir / 'backends'}",
                "--model-control-mode=explicit",
                f"--grpc-address={self.host}", f"--grpc-port={self.grpc_port}",
                f"--http-address={self.host}", f"--http-port={self.http_port}",
                f"--metrics-address={self.host}", f"--metrics-port={self.metrics_port}",
                "--exit-timeout-secs=10",
                # ready means "up, not shutting down", even while a trial's config has failed to load
                # (strict readiness would say "not ready" then, and a stop from outside would look alike)
                "--strict-readiness=false",
                # the demo's 4.9 MB inputs, a batch of them at once, must fit the stub's shared memory
                "--backend-config=python,shm-default-byte-size=67108864",
                "--backend-config=python,shm-growth-byte-size=67108864",
                f"--backend-config=python,shm-region-prefix-name={self.shm_prefix}",
                # a batch of 16 such inputs (79 MB) outgrows the 64 MB default pool Triton stages GPU copies in
                *(f"--cuda-memory-pool-byte-size={gpu}:536870912" for gpu in range(self._visible_gpus())),
                *([] if self.auto_complete else ["--disable-auto-complete-config"]),
                *self.extra_args]

    def _visible_gpus(self) -> int:
        return len(self.gpus) if self.gpus and self.gpus != "all" else _gpu_count()

    def environment(self) -> dict[str, str]:
        _, libs = triton_dist()
        env = dict(os.environ)
        # libpython of *this* interpreter first, so the stub embeds the Python we run under; never a
        # system folder, whose libraries (an older cuDNN) would shadow those a wheel's RPATH finds
        libdir = sysconfig.get_config_var("LIBDIR") or ""
        lib_dirs = [str(libs), "" if libdir in _SYSTEM_LIB_DIRS else libdir, env.get("LD_LIBRARY_PATH", "")]
        env["LD_LIBRARY_PATH"] = ":".join(d for d in lib_dirs if d)
        env["PATH"] = os.pathsep.join([str(Path(sys.executable).parent), env.get("PATH", "")])
        if self.gpus and self.gpus != "all":  # this server's GPUs only, not the tuner's whole process
            env["CUDA_VISIBLE_DEVICES"] = ",".join(self.gpus)
        return env

    def start(self) -> EmbeddedServer:
        self.run_dir.mkdir(parents=True, exist_ok=True)
        remove_leftovers(self.run_dir)
        prepare_backends(self.run_dir / "backends", self.backend_folders)
        for attempt in range(1, START_ATTEMPTS + 1):
            try:
                return self._start()
            except ServerError:
                ports = (self.grpc_port, self.http_port, self.metrics_port)
                self.stop()  # never leave a server that did not become ready
                if attempt == START_ATTEMPTS or not any(_taken(port) for port in ports):
                    raise
        raise AssertionError("unreachable")

    def _start(self) -> EmbeddedServer:
        self.grpc_port, self.http_port, self.metrics_port = free_ports(3)
        started = time.perf_counter()
        with open(self.log_path, "ab") as log:
            self.process = subprocess.Popen(self.command(), env=self.environment(), stdout=log,
                                            stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                            preexec_fn=_die_with_parent, start_new_session=True)
        (self.run_dir / _PID_FILE).write_text(f"{self.process.pid} {os.getpid()}\n")
        self._control = TritonControl(self.url)
        try:
            self.control.wait_ready(self.ready_timeout_s, alive=self.alive, log_path=self.log_path)
        except BaseException:  # Ctrl-C during start-up too
            self.stop()
            raise
        self.ready_s = time.perf_counter() - started
        return self

    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def memory_mib(self) -> float | None:
        """Resident memory of tritonserver and its children (the python backend's stubs)."""
        return tree_rss_mib(self.process.pid) if self.process is not None and self.alive() else None

    def stop(self, graceful: bool = True) -> None:
        """SIGINT lets Triton unload its models; a model whose load failed inside its backend stays
        "live" and would hold the shutdown for the whole exit timeout, so after STOP_GRACE_S the
        server's process group (the server and its backend stubs) is killed (at once when it hangs)."""
        super().stop()
        if self.process is None:
            return
        if graceful and self.process.poll() is None:
            self.process.send_signal(signal.SIGINT)
            try:
                self.process.wait(timeout=STOP_GRACE_S)
            except subprocess.TimeoutExpired:
                pass
        try:
            os.killpg(self.process.pid, signal.SIGKILL)  # its own session: only the server and its stubs
        except ProcessLookupError:
            pass
        self.process.wait()
        self.process = None
        (self.run_dir / _PID_FILE).unlink(missing_ok=True)
        for region in Path("/dev/shm").glob(f"{self.shm_prefix}*"):  # a killed stub leaves its regions
            region.unlink(missing_ok=True)

    @property
    def shm_prefix(self) -> str:
        return f"{SHM_PREFIX}{os.getpid()}_{self.grpc_port}_"


def _taken(port: int) -> bool:
    """Bound by another process (the race between free_ports and the server binding it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return True
    return False


def _triton_group(pgid: int) -> list[int]:
    """The processes of group `pgid` that are tritonserver or its backend stubs (a pid recorded
    long ago may have been reused by something else)."""
    found = []
    for proc in Path("/proc").glob("[0-9]*"):
        try:
            group = int((proc / "stat").read_text().rpartition(")")[2].split()[2])
            command = (proc / "cmdline").read_bytes()
        except (OSError, ValueError, IndexError):
            continue
        if group == pgid and b"triton" in command:
            found.append(int(proc.name))
    return found


def remove_leftovers(run_dir: Path) -> None:
    """What a tuner killed outright (SIGKILL, power loss) left in this run dir: its server's process
    group (backend stubs outlive their server) and every shared-memory region of a tuner that no
    longer runs."""
    found = run_dir / _PID_FILE
    if found.exists():
        server_pid, owner = (int(v) for v in found.read_text().split())
        if not pid_alive(owner):
            for pid in _triton_group(server_pid):
                try:
                    os.kill(pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
            found.unlink(missing_ok=True)
    for region in Path("/dev/shm").glob(f"{SHM_PREFIX}*"):
        tag = region.name.removeprefix(SHM_PREFIX).partition("_")[0]
        if tag.isdigit() and not pid_alive(int(tag)):
            region.unlink(missing_ok=True)
