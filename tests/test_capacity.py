"""Capacity under an SLO, and traffic shapes: against a real embedded Triton serving a model whose
capacity is known in closed form (the tiny model with a fixed cost per batch: instances *
max_batch_size / cost requests/s), plus the pure parts (the capacity search on a queue whose P95
is known, the arrival schedules) on their own."""
import json
import math
import re
import shutil

import numpy as np
import pytest
from support import MODELS, SPACES, load_study, search, tuner

from tuner.config.modelconfig import parse_config, read_config
from tuner.errors import ConfigError
from tuner.measure.arrivals import Arrivals, Shape, parse_arrivals, schedule
from tuner.measure.capacity import CapacitySpec, find_capacity
from tuner.measure.evaluate import Evaluator
from tuner.measure.load import LoadSpec
from tuner.measure.loadgen import drive
from tuner.measure.measurement import Measurement
from tuner.server import EmbeddedServer
from tuner.study.trials import Key

COST_S = 0.1  # tiny_capacity's fixed cost per batch
SLO_MS = 300.0


# --- the search's logic, on a queue whose P95 is known ----------------------------------------

def _mm1(service_rate: float):
    """One queue with exponential service: P95 = ln(20) / (service - arrival); over the limit the
    queue grows without end and it serves its limit."""
    def at(rate: float) -> Measurement:
        p95 = math.log(20) / (service_rate - rate) * 1e3 if rate < service_rate else 1e5
        served = min(rate, service_rate)
        return Measurement(served, p95 / 3, p95 / 1.5, p95, p95 * 1.3, (p95 * 0.95, p95 * 1.05),
                           (served * 0.98, served * 1.02), 1000, 0, 2.0, 2, True, 0.1)
    return at


@pytest.mark.unit
@pytest.mark.parametrize("service,slo,first", [(500, 50, 100), (500, 50, 480), (500, 10, 2000), (100, 200, 150)])
def test_the_capacity_search_brackets_the_slo_crossing_in_few_steps(service, slo, first):
    truth = service - math.log(20) / (slo / 1e3)
    found = find_capacity(_mm1(service), CapacitySpec(slo), first)
    assert found.bracketed and 0.95 * truth <= found.rate <= truth, (found.rate, truth)
    assert len(found.steps) <= 6 and found.at.p95_ms <= slo


@pytest.mark.unit
def test_no_rate_meets_an_slo_below_the_service_time():
    found = find_capacity(_mm1(100), CapacitySpec(slo_p95_ms=1.0), 80)  # ln(20)/100 s = 30 ms at the least
    assert found.rate == 0 and not found.bracketed and found.at.p95_ms > 1.0


# --- arrival schedules ----------------------------------------------------------------------

def _first(arrivals: Arrivals, rate: float, n: int) -> np.ndarray:
    it = schedule(arrivals, rate, seed=3)
    return np.array([next(it)[0] for _ in range(n)])


@pytest.mark.unit
@pytest.mark.parametrize("arrivals", [Arrivals(), Arrivals(Shape.BURSTS, on_s=0.2, off_s=0.6),
                                      Arrivals(Shape.RAMP, period_s=2.0)])
def test_every_shape_has_the_asked_mean_rate(arrivals):
    times = _first(arrivals, 100.0, 20000)
    assert abs(len(times) / times[-1] / 100 - 1) < 0.03


@pytest.mark.unit
def test_bursts_send_nothing_between_bursts_and_ramps_climb():
    bursts = _first(Arrivals(Shape.BURSTS, on_s=0.2, off_s=0.6), 100.0, 5000)
    assert np.all(np.mod(bursts, 0.8) <= 0.2 + 1e-9)
    ramp = np.mod(_first(Arrivals(Shape.RAMP, period_s=2.0), 100.0, 20000), 2.0)
    late, early = np.sum(ramp > 1.0), np.sum(ramp <= 1.0)
    assert abs(late / early - 3) < 0.3  # a rate rising linearly: 3/4 of a period's requests in its second half


@pytest.mark.unit
def test_a_recording_is_replayed_with_its_gaps_scaled_and_looped(tmp_path):
    path = tmp_path / "arrivals.csv"
    path.write_text("offset_s,input\n1000.0,0\n1000.1,1\n1000.4,0\n1000.5,1\n")  # looped with its mean gap: 6/s
    arrivals = parse_arrivals(str(path))
    assert arrivals.offsets == pytest.approx((0, 0.1, 0.4, 0.5)) and arrivals.inputs == (0, 1, 0, 1)
    it = schedule(arrivals, rate=12.0)  # 2x the recording's mean rate: every gap halved
    got = [next(it) for _ in range(6)]
    assert [t for t, _ in got] == pytest.approx([0, 0.05, 0.2, 0.25, 1 / 3, 1 / 3 + 0.05])
    assert [i for _, i in got] == [0, 1, 0, 1, 0, 1]


@pytest.mark.unit
@pytest.mark.parametrize("text,error", [
    ("offset_s\n0.1\nabc\n", r"line 3: offset_s 'abc' is not a number"),
    ("time\n0.1\n", r"line 1: expected a header naming offset_s"),
    ("offset_s,input\n0.1,0\n0.2,x\n", r"line 3: input 'x' is not an --input-data entry number"),
    ("offset_s\n0.1\n", r"1 requests; replaying needs at least 2"),
])
def test_a_bad_recording_is_refused_naming_the_line(tmp_path, text, error):
    path = tmp_path / "bad.csv"
    path.write_text(text)
    with pytest.raises(ConfigError, match=re.escape(str(path)) + ": " + error):
        parse_arrivals(str(path))


@pytest.mark.unit
def test_bad_shapes_are_refused():
    for text in ("bursts:1", "bursts:0/1", "ramp:-2", "poisson:3"):
        with pytest.raises(ConfigError, match="expected poisson, bursts:ON/OFF or ramp:PERIOD"):
            parse_arrivals(text)


# --- against Triton ---------------------------------------------------------------------------

@pytest.fixture(scope="module")
def fixed_cost(tmp_path_factory):
    """The tiny model, its own config at 50 ms per batch with dynamic batching, in a repository
    of its own (served, and tuned, from there)."""
    root = tmp_path_factory.mktemp("capacity")
    shutil.copytree(MODELS / "tiny", root / "repo" / "tiny")
    config = root / "repo" / "tiny" / "config.pbtxt"
    config.write_text(config.read_text() + 'dynamic_batching { }\nparameters { key: "delay_ms" value: '
                      f'{{ string_value: "{COST_S * 1e3:g}" }} }}\n')
    return root / "repo"


@pytest.fixture(scope="module")
def server(fixed_cost, tmp_path_factory):
    with EmbeddedServer(fixed_cost, tmp_path_factory.mktemp("run")) as s:
        yield s


@pytest.mark.system
@pytest.mark.alone  # the closed form holds for a sleep that gets the cores it needs
def test_a_capacity_search_finds_each_configs_closed_form_capacity(fixed_cost, workdir):
    done = search(workdir, "--search-space", str(SPACES / "tiny_capacity.yaml"), "--trials", "4",
                  "--objective", "capacity", "--slo-p95-ms", f"{SLO_MS:g}", "--seed", "1", "--warmup-s", "1",
                  "--max-measure-s", "4",
                  target=("--model-repository", str(fixed_cost), "--model", "tiny"))
    assert done.returncode == 0, done.stderr
    assert re.search(r"holds \d+\.\d req/s at P95 <= 300 ms", done.stdout), done.stdout
    study = load_study(workdir)
    assert study.metric_names == ["capacity_req_per_s", "p95_latency_ms"]
    measured = [t for t in study.trials if t.values and Key.DUPLICATE_OF not in t.user_attrs]
    assert len({t.user_attrs[Key.FINGERPRINT] for t in measured}) == 4, "every config of the space measured"
    for t in measured:
        config = parse_config(t.user_attrs[Key.CONFIG], f"trial {t.number}")
        truth = config.instance_group[0].count * config.max_batch_size / COST_S
        curve = t.user_attrs[Key.CURVE]
        assert abs(t.values[0] / truth - 1) <= 0.10, (t.number, t.values[0], truth, curve)
        assert len(curve) <= 8 and t.values[1] <= SLO_MS  # P95 at capacity, within the SLO
        assert max(s[0] for s in curve if s[4]) == pytest.approx(t.values[0], rel=1e-4)  # the highest that met it
    manifest = json.loads((workdir / "out" / "tiny" / "tuner_manifest.json").read_text())
    exported = next(t for t in measured if t.number == manifest["trial"])
    assert manifest["capacity_req_per_s"] == exported.values[0] and manifest["curve"] == exported.user_attrs[Key.CURVE]
    report = tuner(workdir, "report", "--storage", f"sqlite:///{workdir / 'study.db'}", "--out", str(workdir / "rep"))
    assert report.returncode == 0 and "holds req/s" in report.stdout, report.stderr
    assert (workdir / "rep" / "curves.png").stat().st_size > 10_000  # P95 against offered rate, drawn


@pytest.mark.system
@pytest.mark.alone  # send times within 4 ms: other tests' load on the cores would delay them
def test_a_recorded_file_is_replayed_with_the_recorded_gaps(server, tmp_path):
    gaps = [0.01, 0.05, 0.02, 0.08, 0.03, 0.11]  # seconds, replayed at the recording's own rate
    offsets = np.cumsum([0.0, *gaps])
    path = tmp_path / "arrivals.json"
    path.write_text("[" + ", ".join(f'{{"offset_s": {o:.3f}}}' for o in offsets) + "]")
    arrivals = parse_arrivals(str(path))
    rate = len(offsets) / (offsets[-1] * len(offsets) / (len(offsets) - 1))
    spec = LoadSpec(request_rate=rate, arrivals=arrivals, warmup_s=0.0, window_s=0.5, min_samples=10,
                    max_duration_s=1.0)
    with Evaluator(server, "tiny", spec) as evaluator:
        evaluator.server.control.load("tiny")
        recording = drive(server.url, evaluator.requests(True), spec)
    sent = np.diff(recording.sent[:len(offsets)])
    assert np.allclose(sent, gaps, atol=0.004), sent  # within the event loop's timer resolution
    assert not recording.errors


@pytest.mark.system
@pytest.mark.alone  # latencies against a closed form: other tests' load on the cores would add to them
def test_bursts_queue_as_a_fixed_cost_server_must(server):
    """1 instance, batches of one at 50 ms each: 20 requests/s at most. At a mean of 10/s, Poisson
    arrivals queue a little; bursts of 40/s for 0.5 s in every 2 s bring (40 - 20) * 0.5 = 10
    requests of backlog, waited out at 50 ms each: the last of a burst waits about 0.5 s, and the
    burst's latencies spread evenly from 50 to about 550 ms."""
    config = read_config(server.model_repository / "tiny" / "config.pbtxt")
    config.max_batch_size = 1
    config.parameters["delay_ms"].string_value = "50"
    common = dict(request_rate=10.0, warmup_s=0.0, window_s=2.0, min_samples=10_000, max_duration_s=8.0)
    with Evaluator(server, "tiny", LoadSpec(**common)) as evaluator:
        poisson = evaluator.evaluate(config).measurement
    with Evaluator(server, "tiny", LoadSpec(**common, arrivals=Arrivals(Shape.BURSTS, 0.5, 1.5))) as evaluator:
        bursts = evaluator.evaluate(config).measurement
    assert poisson is not None and bursts is not None
    assert poisson.p95_ms < 250 and 350 <= bursts.p95_ms <= 700, (poisson.p95_ms, bursts.p95_ms)
    assert 200 <= bursts.p50_ms <= 400 and bursts.server.queue_ms > 3 * poisson.server.queue_ms


@pytest.mark.integration
def test_goodput_against_instances_is_a_study_of_its_own(fixed_cost, workdir):
    done = search(workdir, "--search-space", str(SPACES / "tiny_capacity.yaml"), "--trials", "2",
                  "--objective", "goodput", "--cost", "instances", "--slo-p95-ms", "250",
                  "--request-rate", "40", target=("--model-repository", str(fixed_cost), "--model", "tiny"))
    assert done.returncode == 0, done.stderr
    study = load_study(workdir)
    assert study.metric_names == ["goodput_req_per_s", "instances"]
    for t in (t for t in study.trials if t.values):
        config = parse_config(t.user_attrs[Key.CONFIG], f"trial {t.number}")
        metrics = t.user_attrs[Key.METRICS]
        assert t.values[1] == config.instance_group[0].count
        # requests within 250 ms per second, of about 40/s served by batches of 100 ms each
        assert t.values[0] == pytest.approx(metrics["goodput"], rel=1e-3)
        assert 0 < t.values[0] <= metrics["throughput"] + 1e-3
