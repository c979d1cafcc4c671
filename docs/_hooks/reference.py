"""The reference pages, written from the code at build time so that they cannot drift from it: the
command line (from the parser), the knobs and backend parameters (from the catalog in
tuner.config.space and tuner.config.knobs), trial attributes and failures (tuner.study.trials, tuner.faults), the exit
codes (tuner.errors), the modules (their docstrings), and the benchmarks page from
benchmarks/RESULTS.md."""
from __future__ import annotations

import argparse
import importlib
import inspect
import os
import pkgutil
import re
from pathlib import Path

from mkdocs.structure.files import File, Files

import tuner
from tuner import cli, faults
from tuner.config import knobs, parameters
from tuner.errors import Exit
from tuner.study import trials


def on_files(files: Files, config) -> Files:
    for path, text in PAGES.items():
        files.append(File.generated(config, path, content=text()))
    return files


def _commands(parser: argparse.ArgumentParser, prefix: str) -> list[tuple[str, argparse.ArgumentParser]]:
    """Every command and subcommand under `parser`, with its full name."""
    found = [(prefix, parser)]
    for action in parser._actions:  # argparse keeps its subcommands here and nowhere public
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                found += _commands(sub, f"{prefix} {name}")
    return found


def cli_page() -> str:
    os.environ["COLUMNS"] = "100"  # argparse wraps help to the terminal's width: one width for the page
    parts = ["# Command line\n",
             "Every command's `--help`, as the installed `tuner` prints it (`python -m tuner` is the same).\n"]
    for name, parser in _commands(cli.parser(), "tuner"):
        parts += [f"## `{name}`\n", f"```text\n{parser.format_help().rstrip()}\n```\n"]
    return "\n".join(parts)


def _cell(text: str) -> str:
    return text.replace("|", "\\|")


def knobs_page() -> str:
    rows = ["# Knobs and backend parameters\n",
            "What a search space's `knobs:` may name, the values each takes (in the words of its refusal) "
            "and the config.pbtxt field it writes. See [Search spaces](../guides/search-spaces.md) for the "
            "file's format.\n",
            "| knob | values | writes |", "| --- | --- | --- |"]
    rows += [f"| `{name}` | {_cell(knob.values)} | {_cell(knob.writes)} |" for name, knob in knobs.KNOBS.items()]
    rows += ["| `parameters: {NAME: ...}` | strings (numbers and booleans are written as strings) | "
             "`parameters { key: NAME value { string_value } }`: the backend's own settings, below |", "",
             "## Backend parameters\n",
             _cell(inspect.getdoc(parameters) or "") + "\n",
             "A python model reads whatever its `model.py` reads, so any key goes there.\n",
             "| backend | key | values | acts on | only when | read in |", "| --- | --- | --- | --- | --- | --- |"]
    for backend, catalog in parameters.PARAMETERS.items():
        for key, p in catalog.items():
            values = f"refused: {p.refused}" if p.refused else (p.check("\0") or "any string").removeprefix("must be ")
            kinds = ", ".join(sorted(p.kinds))
            when = []
            if p.needs:
                other, wanted = p.needs
                when.append(f"`{other}` is {' or '.join(sorted(w or 'unset' for w in wanted))}")
            if p.sticky:
                when.append("the model's own config.pbtxt states it (process-wide: a config without it keeps the "
                            "last value)")
            rows.append(f"| {backend} | `{key}` | {_cell(values)} | {kinds} | {_cell('; '.join(when))} | "
                        f"`{parameters.SOURCES.get(backend, '')}` |")
    return "\n".join(rows) + "\n"


def _commented(cls) -> list[tuple[str, str]]:
    """A class's `NAME = "value"  # meaning` lines, as (value, meaning)."""
    return re.findall(r'^\s+\w+ = "(\w+)"(?:\s+# (.*))?$', inspect.getsource(cls), re.MULTILINE)


def trials_page() -> str:
    rows = ["# Trial attributes\n",
            "What each trial keeps in the Optuna storage, under these user-attribute names: the dashboard "
            "shows them, and `tuner report` and `tuner export` read them.\n",
            "| attribute | meaning |", "| --- | --- |"]
    rows += [f"| `{value}` | {_cell(meaning)} |" for value, meaning in _commented(trials.Key)]
    rows += ["", "## Failures\n",
             "A failed trial's `failure`: the config's own failures count toward `--trials` and are told to "
             "the sampler; the environment's are measured again and do not count.\n",
             "| failure | whose | what happened |", "| --- | --- | --- |"]
    meanings = dict(_commented(faults.Failure))
    rows += [f"| `{f.value}` | {f.side.value} | {_cell(meanings.get(f.value, ''))} |" for f in faults.Failure]
    return "\n".join(rows) + "\n"


def exit_page() -> str:
    rows = ["# Exit codes\n", "| code | meaning |", "| --- | --- |"]
    rows += [f"| {code.value} | {_cell(code.meaning)} |" for code in Exit]
    return "\n".join(rows) + "\n"


def modules_page() -> str:
    rows = ["# Modules\n", "The package's modules, each with the first line of its docstring.\n",
            "| module | what it is |", "| --- | --- |"]
    for info in pkgutil.walk_packages(tuner.__path__, "tuner."):
        if info.name.endswith("__main__"):  # importing it would run the command line
            continue
        doc = inspect.getdoc(importlib.import_module(info.name)) or ""
        rows.append(f"| `{info.name}` | {_cell(' '.join(doc.split(chr(10) + chr(10))[0].split()))} |")
    return "\n".join(rows) + "\n"


_RESULTS = Path(__file__).resolve().parents[2] / "benchmarks" / "RESULTS.md"


def benchmarks_page() -> str:
    """benchmarks/RESULTS.md as it is in the repository: the measurements, newest first."""
    return _RESULTS.read_text()


PAGES = {"reference/cli.md": cli_page, "reference/knobs.md": knobs_page, "reference/trials.md": trials_page,
         "reference/exit-codes.md": exit_page, "reference/modules.md": modules_page,
         "benchmarks.md": benchmarks_page}
