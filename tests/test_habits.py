"""The project's habits, checked with the tests: ruff and mypy on tuner/ and benchmarks/ (settings in
pyproject.toml: benchmark scripts break silently otherwise), and Optuna's public interface only."""
import ast
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from support import ROOT


@pytest.mark.parametrize("tool", [pytest.param(["ruff", "check", "."], id="ruff", marks=pytest.mark.unit),
                                  pytest.param(["mypy"], id="mypy", marks=pytest.mark.system)])
def test_tuner_passes(tool):
    if shutil.which(tool[0]) is None and not (Path(sys.executable).parent / tool[0]).exists():
        pytest.skip(f"{tool[0]} is not installed (pip install -e '.[test]')")
    done = subprocess.run([str(Path(sys.executable).parent / tool[0]), *tool[1:]], cwd=ROOT, capture_output=True,
                          text=True)
    assert done.returncode == 0, done.stdout + done.stderr


@pytest.mark.unit
def test_the_tuner_uses_only_optunas_public_interface():
    source = "\n".join(p.read_text() for p in (ROOT / "tuner").rglob("*.py"))
    assert "._storage" not in source and "._trial_id" not in source


# The package's layers, lowest first: a module imports only from its own layer or those below.
LAYERS = (("tuner", "tuner.errors", "tuner.faults"), ("tuner.config", "tuner.backends"), ("tuner.server",),
          ("tuner.measure",), ("tuner.study",), ("tuner.output",), ("tuner.run",), ("tuner.cli",))


def _imports() -> dict[str, set[str]]:
    """Each module of the package -> the package's modules it imports (at the top or in a function)."""
    found = {}
    for path in (ROOT / "tuner").rglob("*.py"):
        if "model_repository_template" in path.parts or path.name == "__main__.py":
            continue
        name = ".".join(path.relative_to(ROOT).with_suffix("").parts).removesuffix(".__init__")
        names = set()
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and node.module and node.module.split(".")[0] == "tuner":
                # `from tuner.x import y`: the module tuner.x.y where there is one, else tuner.x itself
                names |= {f"{node.module}.{a.name}" if _is_module(f"{node.module}.{a.name}") else node.module
                          for a in node.names}
            elif isinstance(node, ast.Import):
                names |= {a.name for a in node.names if a.name.split(".")[0] == "tuner"}
        found[name] = names
    return found


def _is_module(name: str) -> bool:
    path = ROOT.joinpath(*name.split("."))
    return path.with_suffix(".py").is_file() or (path / "__init__.py").is_file()


def _layer(module: str) -> int:
    return max(i for i, layer in enumerate(LAYERS) for top in layer if module == top or
               (top != "tuner" and module.startswith(top + ".")))


@pytest.mark.unit
def test_imports_go_down_the_layers_and_never_in_a_circle():
    graph = _imports()
    upward = [f"{m} -> {i}" for m, names in graph.items() for i in names if _layer(i) > _layer(m)]
    assert not upward, upward
    modules = {i for names in graph.values() for i in names} & set(graph)
    done: set[str] = set()

    def visit(module: str, path: tuple[str, ...]) -> None:
        assert module not in path, " -> ".join((*path, module))
        if module not in done:
            for other in sorted(graph[module] & modules - {module}):
                visit(other, (*path, module))
            done.add(module)

    for module in sorted(graph):
        visit(module, ())


@pytest.mark.unit
def test_no_module_is_a_hub():
    long = {str(p.relative_to(ROOT)): n for p in (ROOT / "tuner").rglob("*.py")
            if "model_repository_template" not in p.parts and (n := len(p.read_text().splitlines())) > 350}
    assert not long, long
