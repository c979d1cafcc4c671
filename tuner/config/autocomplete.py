"""Whether Triton's config auto-completion can change a model's config.

With auto-completion on (Triton's default), every load of a python-backend model starts a stub
process of its own just to call the model's `auto_complete_config`, then stops it: 1.3 s of a
1.4 s load of a small model here, paid on every trial. When no model the server loads can be
changed by it, the tuner's own servers run without it, and what they measure is what a server with
it serves. It can change:
- a python model whose `TritonPythonModel` defines `auto_complete_config` (or inherits from a class
  that might: the stub calls it whenever the class has it);
- a model of any other backend (ONNX Runtime and OpenVINO fill in inputs, outputs and batching
  from the model file), and one whose model file cannot be read.
An ensemble is completed by no backend.
"""
from __future__ import annotations

import ast
from pathlib import Path

from tritonclient.grpc.model_config_pb2 import ModelConfig

from tuner.config.parameters import backend_of

_HOOK = "auto_complete_config"


def can_change(folder: Path, config: ModelConfig) -> bool:
    """Whether auto-completion can change the config of the model in `folder`."""
    backend = backend_of(config)
    if backend == "ensemble":
        return False
    if backend != "python":
        return True
    versions = [p for p in folder.iterdir() if p.is_dir() and p.name.isdigit()] if folder.is_dir() else []
    files = [v / (config.default_model_filename or "model.py") for v in versions]
    return not files or any(_completes(f) for f in files)


def _completes(model_file: Path) -> bool:
    """Whether the TritonPythonModel of `model_file` has an auto_complete_config (True if unsure)."""
    try:
        tree = ast.parse(model_file.read_text())
    except (OSError, SyntaxError, ValueError):
        return True
    classes = [n for n in tree.body if isinstance(n, ast.ClassDef) and n.name == "TritonPythonModel"]
    if len(classes) != 1 or classes[0].bases:
        return True
    return any(_HOOK in _names(n) for n in classes[0].body)


def _names(statement: ast.stmt) -> set[str]:
    """The names a statement of a class body defines."""
    if isinstance(statement, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
        return {statement.name}
    targets = statement.targets if isinstance(statement, ast.Assign) else \
        [statement.target] if isinstance(statement, (ast.AnnAssign, ast.AugAssign)) else []
    return {n.id for t in targets for n in ast.walk(t) if isinstance(n, ast.Name)}
