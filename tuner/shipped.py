"""What the package ships beside its code: the demo model repository and the search spaces. In a
checkout they sit at the repository's top; the wheel maps them into the package."""
from __future__ import annotations

from pathlib import Path

_HERE = Path(__file__).resolve().parent
_ROOT = _HERE if (_HERE / "search_spaces").is_dir() else _HERE.parent
DEMO_REPOSITORY = _ROOT / "model_repository_template"
DEMO_MODEL = "detector"  # ONNX Runtime; detector_python is its python-backend twin
SPACES = _ROOT / "search_spaces"
