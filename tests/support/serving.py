"""A model served on its own: copied into a repository of its own, under an embedded server."""
from __future__ import annotations

import contextlib
import shutil
from collections.abc import Iterator
from pathlib import Path

from tuner.server import EmbeddedServer


@contextlib.contextmanager
def serving(model: Path, root: Path) -> Iterator[EmbeddedServer]:
    """The model folder `model` copied under `root`, served by a fresh embedded server."""
    shutil.copytree(model, root / "repo" / model.name)
    with EmbeddedServer(root / "repo", root / "run") as server:
        yield server
