"""What the package ships beside its code: the demo model repository and the search spaces. In a
checkout they sit at the repository's top; the wheel maps them into the package."""
from __future__ import annotations

from pathlib import Path

_PACKAGE = Path(__file__).resolve().parents[1]
_ROOT = _PACKAGE if (_PACKAGE / "search_spaces").is_dir() else _PACKAGE.parent
DEMO_REPOSITORY = _ROOT / "model_repository_template"
DEMO_MODEL = "detector"  # ONNX Runtime; detector_python is its python-backend twin
SPACES = _ROOT / "search_spaces"
