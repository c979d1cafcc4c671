"""What the package ships beside its code: the demo model repository and the search spaces (package
data, so a non-editable install finds them too)."""
from __future__ import annotations

from pathlib import Path

_HERE = Path(__file__).resolve().parent
DEMO_REPOSITORY = _HERE / "model_repository_template"
DEMO_MODEL = "detector"  # ONNX Runtime; detector_python is its python-backend twin
SPACES = _HERE / "search_spaces"
