"""The repository and the test models, search spaces and pipelines it carries."""
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
TESTS = ROOT / "tests"
MODELS = TESTS / "models"
SPACES = TESTS / "spaces"
PIPELINES = TESTS / "pipelines"
