"""The documentation site builds with no warning (a broken link or anchor, a page outside the
navigation fails it), and its reference pages are the code's own words."""
import os
import subprocess
import sys

import pytest
from support import ROOT

from tuner import cli
from tuner.config import knobs, parameters
from tuner.errors import Exit

pytestmark = pytest.mark.unit

sys.path.insert(0, str(ROOT / "docs" / "_hooks"))
import reference  # noqa: E402  (the site's build hook)


def test_the_site_builds_strict(tmp_path):
    built = subprocess.run([sys.executable, "-m", "mkdocs", "build", "--strict", "-q", "-d", str(tmp_path / "site")],
                           cwd=ROOT, capture_output=True, text=True, env={**os.environ, "NO_MKDOCS_2_WARNING": "1"})
    assert built.returncode == 0, built.stderr
    for page in ("reference/cli", "reference/knobs", "reference/trials", "reference/exit-codes", "benchmarks",
                 "guides/own-model"):
        assert (tmp_path / "site" / page / "index.html").is_file(), page


def test_the_reference_pages_say_what_the_code_does(monkeypatch):
    monkeypatch.setenv("COLUMNS", "100")
    page = reference.cli_page()
    for name, parser in reference._commands(cli.parser(), "tuner"):
        assert f"## `{name}`" in page and parser.format_help().rstrip() in page, name
    assert {"tuner search", "tuner backends build", "tuner measure"} <= {n for n, _ in reference._commands(
        cli.parser(), "tuner")}
    catalog = reference.knobs_page()
    assert all(f"| `{name}` |" in catalog for name in knobs.KNOBS)
    assert all(f"| {backend} | `{key}` |" in catalog for backend, keys in parameters.PARAMETERS.items() for key in keys)
    assert all(f"| {code.value} |" in reference.exit_page() for code in Exit)
    assert "| `fail_reason` | Triton's (or the tuner's) words |" in reference.trials_page()
