"""The load generator against ground truth: a model whose service is a known sleep, measured by the
tuner and by perf_analyzer, each beside the figure queueing theory gives (tuner/measure/queueing.py).

The model is the tests' tiny python model: it sleeps (so the client and the server do not fight over
the cores) a fixed time per execution, an exponential time of that mean, or a + b * batch size.

  * fixed service s = 20 ms, no batching, closed loop at concurrency 1, 8, 32 on 1, 2, 4 instances:
    throughput min(c, n) / s, every latency ceil(c / n) * s;
  * batch cost 10 ms + 2 ms a request, max batch 8, a batcher that waits for batches to fill,
    concurrency 8 and 32 on 1, 2, 4 instances;
  * exponential service of mean 20 ms, Poisson arrivals at 50, 80 and 95 % of n / s on 1, 2, 4
    instances, s as Triton times the service at concurrency 1 (M/M/n: the P95 from Erlang C).

The python backend's own cost per execution (the stub's round trip, the sleep's overshoot) adds to
the sleep. Each cell is therefore given two closed forms: with the nominal service (the sleep),
and with the service as Triton itself timed it (its compute time per execution, from its
statistics over the tuner's measurement: an instrument of the server's, not the load
generator's) and the request's trip outside it (the gRPC round trip and the backend's handling,
measured once: one client's cycle on a 1 ms sleep less the time Triton gave the execution). The
errors against the second say how far each load generator is from the truth. For Poisson cells
the table also gives what P95 a measurement as long as the tuner's finds on a simulated M/M/n
server (median, 5-95 % of 200 runs from an empty queue): near saturation a finite measurement's
P95 is far from the steady state's, for any instrument.
perf_analyzer is optional (see loadgen_vs_perf_analyzer.py for getting it); without it, its
columns stay empty.

    python benchmarks/ground_truth.py [--cells closed,batch,poisson] [--no-perf-analyzer]

Prints a table and writes benchmarks/results/ground_truth.json.
"""
from __future__ import annotations

import argparse
import csv
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

from benchmarks.common import table, write_json  # noqa: E402
from benchmarks.loadgen_vs_perf_analyzer import perf_analyzer_env, perf_analyzer_option  # noqa: E402
from tuner.config.modelconfig import apply_knobs, read_config  # noqa: E402
from tuner.measure import queueing  # noqa: E402
from tuner.measure.evaluate import Evaluator  # noqa: E402
from tuner.measure.load import LoadSpec  # noqa: E402
from tuner.server import EmbeddedServer  # noqa: E402

TINY = HERE.parent / "tests" / "models" / "tiny"
SERVICE_S, BATCH_A_S, BATCH_B_S = 0.020, 0.010, 0.002


def _config(base, instances: int, parameters: dict, batching: bool, max_batch: int = 8):
    knobs = {"instance_count": instances, "max_batch_size": max_batch, "dynamic_batching": batching,
             "parameters": parameters}
    if batching:  # long enough for returning clients to fill the batch, which then goes at once
        knobs.update(max_queue_delay_us=20_000, preferred_batch_sizes="max")
    return apply_knobs(base, knobs)


def cells(which: set[str], exponential_s: float) -> list[dict]:
    """The cells; open-loop rates are fractions of what `n` instances of the exponential service,
    as Triton timed it at concurrency 1 (`exponential_s`), can serve."""
    found: list[dict] = []
    if "closed" in which:
        for c in (1, 8, 32):
            for n in (1, 2, 4):
                found.append({"kind": "closed, fixed 20 ms", "clients": c, "instances": n, "batching": False,
                              "parameters": {"delay_ms": "20"}, "nominal_s": SERVICE_S,
                              "form": lambda s, r, c=c, n=n: queueing.closed_loop(c, n, s, r)})
    if "batch" in which:
        for c in (8, 32):
            for n in (1, 2, 4):
                found.append({"kind": "closed, batch 10+2/req ms", "clients": c, "instances": n, "batching": True,
                              "parameters": {"delay_ms": "10", "delay_per_request_ms": "2"},
                              "nominal_s": BATCH_A_S + BATCH_B_S * min(c, 8),  # a batch of min(c, 8)
                              "form": lambda s, r, c=c, n=n: queueing.batched_closed_loop(c, n, 8, s, 0.0, r)})
    if "poisson" in which:
        for n in (1, 2, 4):
            for load in (0.5, 0.8, 0.95):
                rate = load * n / exponential_s
                found.append({"kind": f"Poisson {load:.0%}, exp 20 ms", "rate": rate, "instances": n,
                              "batching": False, "parameters": {"delay_ms": "20", "delay_spread": "exponential"},
                              "nominal_s": SERVICE_S, "form": lambda s, r, rate=rate, n=n: _mmn(rate, 1 / s, n)})
    return found


def _mmn(rate: float, mu: float, n: int) -> queueing.Expected:
    """M/M/n, or, at or past capacity, no steady state: the queue grows without bound."""
    if rate >= n * mu:
        return queueing.Expected(n * mu, float("inf"), float("inf"))
    return queueing.mmn(rate, mu, n)


def run_tuner(server, base, cell: dict, max_s: float) -> dict:
    spec = LoadSpec(concurrency=cell.get("clients", 8), request_rate=cell.get("rate"), warmup_s=1.0,
                    window_s=2.0, min_samples=2000, max_duration_s=2 * max_s if "rate" in cell else max_s)
    with Evaluator(server, "tiny", spec) as evaluator:
        m = evaluator.evaluate(_config(base, cell["instances"], cell["parameters"], cell["batching"])).measurement
    assert m is not None, cell
    b = m.server
    assert b is not None, cell  # Triton's statistics over the measurement
    # Triton books an execution's whole time to each request of its batch: per request is per execution
    executed_s = (b.compute_input_ms + b.compute_infer_ms + b.compute_output_ms) / 1e3
    return {"throughput": m.throughput, "throughput_ci": list(m.throughput_ci), "p95_ms": m.p95_ms,
            "p95_ci_ms": list(m.p95_ci_ms), "samples": m.samples, "duration_s": m.duration_s,
            "avg_batch": b.avg_batch_size,
            "triton_service_ms": executed_s * 1e3}


def run_perf_analyzer(pa: str, env: dict, url: str, cell: dict, tmp: Path) -> dict:
    out = tmp / "pa.csv"
    out.unlink(missing_ok=True)
    load = (["--request-rate-range", f"{cell['rate']:g}", "--request-distribution", "poisson"] if "rate" in cell
            else ["--concurrency-range", str(cell["clients"])])
    done = subprocess.run([pa, "-m", "tiny", "-u", url, "-i", "grpc", *load, "--percentile=95",
                           "--measurement-interval", "5000", "--shape", "INPUT0:16", "-f", str(out)],
                          env=env, capture_output=True, text=True, timeout=600)
    if done.returncode != 0 or not out.exists():
        return {"error": (done.stdout + done.stderr).strip().splitlines()[-1:]}
    row = next(csv.DictReader(out.open()))
    return {"throughput": float(row["Inferences/Second"]), "p95_ms": float(row["p95 latency"]) / 1000}


def _band(cell: dict, service_s: float, seconds: float) -> dict:
    """What P95 a measurement as long as the tuner's, from an empty queue after its warm-up, finds
    on this M/M/n server: the median and the 5-95 % range of 200 simulated ones."""
    found = sorted(queueing.simulated_mmn_p95s(cell["rate"], 1 / service_s, cell["instances"], seconds, 1.0, 200))
    return {"median": found[100], "low": found[10], "high": found[189], "seconds": seconds}


def _error(found: float | None, expected: float) -> float | None:
    return None if found is None else found / expected - 1


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--cells", default="closed,batch,poisson")
    ap.add_argument("--max-measure-s", type=float, default=30.0)
    ap.add_argument("--no-perf-analyzer", action="store_true")
    perf_analyzer_option(ap)
    args = ap.parse_args()
    pa = None if args.no_perf_analyzer or not Path(args.perf_analyzer).exists() else args.perf_analyzer
    tmp = Path(tempfile.mkdtemp(prefix="ground-truth-"))
    env = perf_analyzer_env(tmp) if pa else {}
    shutil.copytree(TINY, tmp / "repo" / "tiny")
    base = read_config(tmp / "repo" / "tiny" / "config.pbtxt")
    results = []
    with EmbeddedServer(tmp / "repo", tmp / "run") as server:
        one = run_tuner(server, base, {"clients": 1, "instances": 1, "batching": False,
                                       "parameters": {"delay_ms": "1"}}, args.max_measure_s)
        # one client's cycle beyond the execution Triton times: the trip there and back, the stub's handling
        trip_s = 1 / one["throughput"] - one["triton_service_ms"] / 1e3
        print(f"a request's trip outside the execution Triton times: {trip_s * 1e3:.2f} ms (concurrency 1, "
              f"1 ms sleep, timed at {one['triton_service_ms']:.2f} ms)")
        exponential = run_tuner(server, base, {"clients": 1, "instances": 1, "batching": False, "parameters": {
            "delay_ms": "20", "delay_spread": "exponential"}}, args.max_measure_s)["triton_service_ms"] / 1e3
        print(f"the exponential service's mean as Triton times it: {exponential * 1e3:.2f} ms")
        for cell in cells(set(args.cells.split(",")), exponential):
            tuner = run_tuner(server, base, cell, args.max_measure_s)  # leaves the cell's config loaded
            peer = run_perf_analyzer(pa, env, server.url, cell, tmp) if pa else {}
            timed_s = tuner["triton_service_ms"] / 1e3
            nominal, timed = cell["form"](cell["nominal_s"], 0.0), cell["form"](timed_s, trip_s)
            band = _band(cell, timed_s, tuner["duration_s"]) if "rate" in cell else None
            results.append({**{k: v for k, v in cell.items() if k not in ("form", "parameters")},
                            "expected": {"throughput": timed.throughput, "p95_ms": timed.p95_ms},
                            "nominal": {"throughput": nominal.throughput, "p95_ms": nominal.p95_ms},
                            "simulated_p95_ms": band, "tuner": tuner, "perf_analyzer": peer,
                            "tuner_error": {"throughput": _error(tuner["throughput"], timed.throughput),
                                            "p95": _error(tuner["p95_ms"], timed.p95_ms)},
                            "perf_analyzer_error": {"throughput": _error(peer.get("throughput"), timed.throughput),
                                                    "p95": _error(peer.get("p95_ms"), timed.p95_ms)}})
            print(_row(results[-1]), flush=True)
            write_json("ground_truth", {"trip_ms": trip_s * 1e3,
                                        "exponential_service_ms": exponential * 1e3,
                                        "triton_service_ms_of_1_ms_sleep": one["triton_service_ms"], "cells": results})
    headers = ["cell", "load", "n", "service ms", "nominal /s", "expected /s", "tuner /s", "err", "pa /s", "err",
               "nominal p95", "expected p95", "tuner p95", "err", "in CI", "run of this length", "pa p95", "err"]
    print(table(headers, [_row(r) for r in results]))
    return 0


def _pct(x: float | None) -> str:
    return "" if x is None else f"{x * 100:+.1f}%"


def _row(r: dict) -> list:
    t, p, e = r["tuner"], r["perf_analyzer"], r["expected"]
    within = (t["throughput_ci"][0] <= e["throughput"] <= t["throughput_ci"][1],
              t["p95_ci_ms"][0] <= e["p95_ms"] <= t["p95_ci_ms"][1])
    load = f"c={r['clients']}" if "clients" in r else f"{r['rate']:.0f}/s"
    n = r["nominal"]
    return [r["kind"], load, r["instances"], f"{t['triton_service_ms']:.2f}", f"{n['throughput']:.1f}",
            f"{e['throughput']:.1f}", f"{t['throughput']:.1f}",
            _pct(r["tuner_error"]["throughput"]), f"{p['throughput']:.1f}" if "throughput" in p else "",
            _pct(r["perf_analyzer_error"]["throughput"]), f"{n['p95_ms']:.1f}", f"{e['p95_ms']:.1f}", f"{t['p95_ms']:.1f}",
            _pct(r["tuner_error"]["p95"]), "/".join("yes" if w else "no" for w in within), _in_band(r),
            f"{p['p95_ms']:.1f}" if "p95_ms" in p else "", _pct(r["perf_analyzer_error"]["p95"])]


def _in_band(r: dict) -> str:
    band = r.get("simulated_p95_ms")
    if not band:
        return ""
    inside = "yes" if band["low"] <= r["tuner"]["p95_ms"] <= band["high"] else "no"
    return f"{band['median']:.0f} ({band['low']:.0f}-{band['high']:.0f}): {inside}"


if __name__ == "__main__":
    sys.exit(main())
