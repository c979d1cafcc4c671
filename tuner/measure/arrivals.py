"""When open-loop requests are due: the shape of the traffic, at a mean rate the caller sets.

    poisson          independent arrivals (the default): what many users, each acting alone, send
    bursts:ON/OFF    Poisson arrivals for ON seconds, then none for OFF seconds, and again; the rate
                     while on is the mean rate * (ON + OFF) / ON, so the queue a burst leaves is seen
    ramp:PERIOD      the rate rises from 0 to twice the mean over PERIOD seconds, drops, and rises
                     again (a sawtooth): load that keeps climbing past where the mean sits
    FILE             recorded arrivals replayed with their own gaps, scaled so their mean rate is the
                     asked one, and looped: a CSV with a header naming `offset_s` (seconds; timestamps
                     of any origin) and optionally `input` (which --input-data entry the request
                     carries), or JSON: [{"offset_s": 0.0, "input": 0}, ...]

Every shape has the same mean rate, so a capacity found under one is comparable with another's:
the shape says how traffic varies, the rate how much of it there is. Shapes other than a file are
inhomogeneous Poisson processes, drawn by mapping a unit-rate process through the inverse of the
cumulative rate (exact, no thinning).
"""
from __future__ import annotations

import csv
import json
import math
from collections.abc import Iterator
from dataclasses import dataclass
from enum import Enum
from pathlib import Path

import numpy as np

from tuner.errors import ConfigError


class Shape(str, Enum):
    POISSON = "poisson"
    BURSTS = "bursts"
    RAMP = "ramp"
    RECORDED = "recorded"


@dataclass(frozen=True)
class Arrivals:
    shape: Shape = Shape.POISSON
    on_s: float = 0.0  # bursts
    off_s: float = 0.0
    period_s: float = 0.0  # ramp
    offsets: tuple[float, ...] = ()  # recorded: seconds from the first request, sorted
    inputs: tuple[int, ...] = ()  # recorded: each request's --input-data entry (empty: in turn)
    source: str = ""  # recorded: the file

    def describe(self) -> str:
        """How the study settings and the measurement name it."""
        if self.shape is Shape.BURSTS:
            return f"bursts {self.on_s:g}s on/{self.off_s:g}s off"
        if self.shape is Shape.RAMP:
            return f"ramp over {self.period_s:g}s"
        if self.shape is Shape.RECORDED:
            return f"recorded {Path(self.source).name} ({len(self.offsets)} requests)"
        return "poisson"

    def to_json(self) -> dict:
        return {"shape": self.shape.value, "on_s": self.on_s, "off_s": self.off_s, "period_s": self.period_s,
                "source": self.source}

    @staticmethod
    def from_json(found: dict | None) -> Arrivals:
        """What `to_json` wrote (a recorded file is read again, from where it was)."""
        if not found:
            return Arrivals()
        if found["shape"] == Shape.RECORDED.value:
            return read_arrivals(Path(found["source"]))
        return Arrivals(Shape(found["shape"]), found["on_s"], found["off_s"], found["period_s"])


def parse_arrivals(text: str) -> Arrivals:
    """`--arrivals`: poisson, bursts:ON/OFF, ramp:PERIOD (seconds), or a recorded file."""
    name, _, args = text.partition(":")
    try:
        if name == "poisson" and not args:
            return Arrivals()
        if name == "bursts":
            on, off = (float(v) for v in args.split("/"))
            if on > 0 and off >= 0:
                return Arrivals(Shape.BURSTS, on_s=on, off_s=off)
        elif name == "ramp":
            if float(args) > 0:
                return Arrivals(Shape.RAMP, period_s=float(args))
    except ValueError:
        pass
    recorded = Path(text).suffix in (".csv", ".json")  # a recording is a CSV or JSON file; anything else, a shape
    if not recorded:
        raise ConfigError(f"--arrivals {text}: expected poisson, bursts:ON/OFF or ramp:PERIOD (seconds > 0), "
                          "or a recorded .csv or .json file")
    return read_arrivals(Path(text))


def read_arrivals(path: Path) -> Arrivals:
    """A recorded arrivals file (CSV or JSON), checked: offsets as seconds, inputs as entry numbers."""
    try:
        text = path.read_text()
    except OSError as e:
        raise ConfigError(f"--arrivals {path}: cannot read it: {e.strerror or e}") from None
    rows = _json_rows(path, text) if path.suffix == ".json" else _csv_rows(path, text)
    if len(rows) < 2:
        raise ConfigError(f"{path}: {len(rows)} requests; replaying needs at least 2")
    rows.sort(key=lambda row: row[0])  # logs of several writers come slightly out of order
    if rows[-1][0] == rows[0][0]:
        raise ConfigError(f"{path}: every request has the same offset; their gaps are what is replayed")
    with_input = [row[1] is not None for row in rows]
    if any(with_input) and not all(with_input):
        raise ConfigError(f"{path}: `input` is given for some requests and not others")
    return Arrivals(Shape.RECORDED, offsets=tuple(row[0] - rows[0][0] for row in rows),
                    inputs=tuple(row[1] or 0 for row in rows) if all(with_input) else (), source=str(path))


def _row(path: Path, where: str, offset, choice) -> tuple[float, int | None]:
    try:
        value = float(offset)
    except (TypeError, ValueError):
        raise ConfigError(f"{path}: {where}: offset_s {offset!r} is not a number") from None
    if not math.isfinite(value):
        raise ConfigError(f"{path}: {where}: offset_s {offset!r} is not a finite number")
    if choice is None or choice == "":
        return value, None
    if not str(choice).isdigit():
        raise ConfigError(f"{path}: {where}: input {choice!r} is not an --input-data entry number (0, 1, ...)")
    return value, int(choice)


def _csv_rows(path: Path, text: str) -> list[tuple[float, int | None]]:
    reader = csv.DictReader(text.splitlines())
    if "offset_s" not in (reader.fieldnames or []):
        raise ConfigError(f"{path}: line 1: expected a header naming offset_s (and optionally input)")
    return [_row(path, f"line {reader.line_num}", r["offset_s"], r.get("input")) for r in reader]


def _json_rows(path: Path, text: str) -> list[tuple[float, int | None]]:
    try:
        doc = json.loads(text)
    except json.JSONDecodeError as e:
        raise ConfigError(f"{path}: line {e.lineno}: {e.msg}") from None
    if not isinstance(doc, list) or not all(isinstance(r, dict) and "offset_s" in r for r in doc):
        raise ConfigError(f'{path}: expected [{{"offset_s": 0.0, "input": 0}}, ...]')
    return [_row(path, f"[{i}]", r["offset_s"], r.get("input")) for i, r in enumerate(doc)]


def check_inputs(arrivals: Arrivals, entries: int, source: str) -> None:
    """A recorded request naming an input entry that does not exist is refused before any server starts."""
    if arrivals.inputs and max(arrivals.inputs) >= entries:
        raise ConfigError(f"{arrivals.source}: input {max(arrivals.inputs)} named, but {source} has "
                          f"{entries} entr{'y' if entries == 1 else 'ies'} (numbered from 0)")


def schedule(arrivals: Arrivals, rate: float, seed: int = 0) -> Iterator[tuple[float, int | None]]:
    """(due offset in seconds from the start, input entry or None) for each request, without end,
    at a mean of `rate` requests per second."""
    rng = np.random.default_rng(seed)
    if arrivals.shape is Shape.RECORDED:
        yield from _recorded(arrivals, rate)
        return
    unit = 0.0  # a unit-rate Poisson process, mapped through the inverse of the cumulative rate
    while True:
        unit += rng.exponential(1.0)
        yield _inverse_cumulative(arrivals, rate, unit), None


def _inverse_cumulative(a: Arrivals, rate: float, unit: float) -> float:
    """The time by which `unit` requests are expected under the shape at mean `rate`."""
    if a.shape is Shape.BURSTS:  # all of a cycle's requests come in its first on_s seconds
        cycle = a.on_s + a.off_s
        n, rest = divmod(unit, rate * cycle)
        return n * cycle + rest / (rate * cycle / a.on_s)
    if a.shape is Shape.RAMP:  # rate 2 * mean * t / period within a period: rate * t^2 / period expected
        n, rest = divmod(unit, rate * a.period_s)
        return n * a.period_s + math.sqrt(rest * a.period_s / rate)
    return unit / rate


def _recorded(a: Arrivals, rate: float) -> Iterator[tuple[float, int | None]]:
    """The recording looped, its gaps scaled so the mean rate is `rate`: one loop spans the
    recording plus its mean gap (the join between loops is an ordinary gap)."""
    count = len(a.offsets)
    loop = a.offsets[-1] * count / (count - 1)
    scale = (loop / count) * rate  # the recording's mean gap over the asked one
    n = 0
    while True:
        for i, offset in enumerate(a.offsets):
            yield (n * loop + offset) / scale, a.inputs[i] if a.inputs else None
        n += 1
