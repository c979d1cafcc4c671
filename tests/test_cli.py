"""The command line's own behaviour (its refusals are in test_cli_errors): the version, and no
progress bar where nobody watches one."""
import contextlib
import io

import pytest
from support import tuner

from tuner import __version__
from tuner.cli import options, parser

pytestmark = pytest.mark.unit


def test_version(tmp_path):
    done = tuner(tmp_path, "--version")
    assert done.returncode == 0 and done.stdout.strip() == f"tuner {__version__}"


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


@pytest.mark.parametrize("stderr, args, progress", [
    (_Terminal(), [], True), (_Terminal(), ["--no-progress"], False),
    (io.StringIO(), [], False),  # a log or a pipe: the bar's redraws would fill it
])
def test_a_progress_bar_only_on_a_terminal(stderr, args, progress):
    with contextlib.redirect_stderr(stderr):
        assert options(parser().parse_args(["search", *args])).progress is progress
