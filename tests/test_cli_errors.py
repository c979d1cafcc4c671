"""Bad input is refused before any trial, with a message naming the file, line or field."""
import optuna
import pytest
from support import MODELS, SPACES, search, tuner

pytestmark = pytest.mark.unit


def test_invalid_search_space_is_refused_before_starting(workdir):
    bad = workdir / "bad.yaml"
    bad.write_text("knobs:\n  instance_count: {low: 3, high: 1}\n")
    done = search(workdir, "--search-space", str(bad), "--trials", "2")
    assert done.returncode == 2
    assert f"{bad}:2: knobs.instance_count: low and high must be numbers with low <= high" in done.stderr
    assert not (workdir / "runs").exists()  # no server was started, no study made
    nested = search(workdir, "--search-space", str(bad), "--storage", f"sqlite:///{workdir / 'db' / 'x.db'}")
    assert nested.returncode == 2 and not (workdir / "db").exists()  # not even the storage's folder


def test_storage_under_a_regular_file_is_a_clear_error(workdir):
    (workdir / "file").write_text("")
    done = search(workdir, "--search-space", str(SPACES / "tiny.yaml"), "--trials", "2",
                  "--storage", f"sqlite:///{workdir / 'file' / 'x.db'}")
    assert done.returncode == 2 and "cannot create its folder" in done.stderr and "Traceback" not in done.stderr


def test_knob_that_does_not_apply_is_refused(workdir):
    space = workdir / "trt.yaml"
    space.write_text("knobs:\n  max_batch_size: [1, 2]\n")
    repo = workdir / "repo" / "tiny"
    repo.mkdir(parents=True)
    text = (MODELS / "tiny" / "config.pbtxt").read_text().replace("max_batch_size: 8", "max_batch_size: 0")
    (repo / "config.pbtxt").write_text(text)
    done = search(workdir, "--search-space", str(space), "--model-repository", str(workdir / "repo"))
    assert done.returncode == 2 and "max_batch_size 0" in done.stderr


def test_invalid_pbtxt_is_refused_with_line(workdir):
    repo = workdir / "repo" / "tiny"
    repo.mkdir(parents=True)
    (repo / "config.pbtxt").write_text('name: "tiny"\nbackend: "python"\nmax_batch_size: "x"\n')
    done = search(workdir, "--search-space", str(SPACES / "tiny.yaml"),
                  "--model-repository", str(workdir / "repo"))
    assert done.returncode == 2 and f"{repo / 'config.pbtxt'}:3:" in done.stderr


def test_an_unknown_model_lists_the_models_there(workdir):
    done = search(workdir, target=("--model-repository", str(MODELS), "--model", "nosuchmodel"))
    assert done.returncode == 2
    assert "--model nosuchmodel: no " in done.stderr and "the repository has alltypes, checker, tiny" in done.stderr


def test_goals_and_traffic_shapes_that_cannot_be_measured_are_refused(workdir):
    recorded = workdir / "arrivals.csv"
    recorded.write_text("offset_s,input\n0.0,0\n0.5,1\n")  # input 1: there is one (synthetic) input
    space = ("--search-space", str(SPACES / "tiny.yaml"))
    for args, message in [
        (("--objective", "capacity"), "--objective capacity needs --slo-p95-ms"),
        (("--objective", "goodput"), "--objective goodput needs --slo-p95-ms"),
        (("--cost", "instances"), "--cost instances needs --objective capacity or goodput"),
        (("--objective", "capacity", "--slo-p95-ms", "50", "--request-rate", "100"),
         "--objective capacity finds the request rate itself"),
        (("--arrivals", "bursts:0.5/1.5"), "--arrivals bursts 0.5s on/1.5s off: arrivals shape open-loop traffic"),
        (("--arrivals", "ramp:x", "--request-rate", "10"), "--arrivals ramp:x: expected poisson, bursts:ON/OFF"),
        (("--arrivals", str(recorded), "--request-rate", "10"),
         f"{recorded}: input 1 named, but the synthetic input (no --input-data) has 1 entry"),
    ]:
        done = search(workdir, *space, *args)
        assert done.returncode == 2 and message in done.stderr, (args, done.stderr)
        assert "Traceback" not in done.stderr and not (workdir / "runs").exists()


def test_cuda_shared_memory_without_a_gpu_is_refused_before_starting(workdir):
    """These machines have no GPU (and, with torch's CPU build, no CUDA runtime either)."""
    done = search(workdir, "--search-space", str(SPACES / "tiny.yaml"), "--shared-memory", "cuda")
    assert done.returncode == 2 and "--shared-memory cuda" in done.stderr and "--shared-memory system" in done.stderr
    assert "Traceback" not in done.stderr and not (workdir / "runs").exists()


@pytest.mark.parametrize("args, message", [
    (("search", "--trials", "0"), "argument --trials: 0: must be > 0"),
    (("search", "--trials", "abc"), "argument --trials: 'abc': expected an integer > 0"),
    (("search", "--concurrency", "1.5"), "argument --concurrency: '1.5': expected an integer > 0"),
    (("search", "--slo-p95-ms", "abc"), "argument --slo-p95-ms: 'abc': expected a number > 0"),
    (("search", "--remeasure", "-1"), "argument --remeasure: -1: must be >= 0"),
    (("search", "--warmup-s", "-5"), "argument --warmup-s: -5: must be >= 0"),
    (("measure", "--window-s", "0"), "argument --window-s: 0: must be > 0"),
    (("export", "--trial", "x"), "argument --trial: 'x': expected an integer >= 0"),
    (("dashboard", "--port", "99999"), "argument --port: 99999: a port is 1 to 65535"),
    (("dashboard", "--port", "0"), "argument --port: 0: must be >= 1"),
], ids=lambda v: " ".join(v) if isinstance(v, tuple) else None)
def test_a_bad_value_is_one_line_naming_the_option(workdir, args, message):
    done = tuner(workdir, *args)
    assert done.returncode == 2 and done.stderr.splitlines() == [
        f"tuner {args[0]}: error: {message} (see tuner {args[0]} --help)"], done.stderr


@pytest.fixture
def empty_storage(workdir) -> str:
    url = f"sqlite:///{workdir / 'empty.db'}"
    optuna.storages.RDBStorage(url)  # the tables, no study
    return url


@pytest.mark.parametrize("args, message", [
    (("report", "--storage", "bogus://x"), "--storage bogus://x: not a storage URL"),
    (("export", "--storage", "postgresql://nobody@127.0.0.1:1/x"),
     "--storage postgresql://nobody@127.0.0.1:1/x: cannot open it: "),
    (("dashboard", "--storage", "bogus://"), "--storage bogus://: not a storage URL"),
    (("report", "--storage", "sqlite:///{workdir}/none.db"), "none.db: no such database (run a search first)"),
    (("export", "--storage", "{empty}"), "holds no study yet (run a search first)"),
    (("search", "--arrivals", "burst:1/1", "--request-rate", "5"),
     "--arrivals burst:1/1: expected poisson, bursts:ON/OFF or ramp:PERIOD"),
    (("search", "--search-space", "fastest"), "--search-space fastest: no such file, nor a shipped space (shipped: "
     "default, detector_pipeline"),
    (("measure", "--json", "{workdir}/no/such/folder/m.json"), "m.json: cannot write a file there"),
    (("measure", "--json", "{workdir}"), "cannot write a file there (it is a folder)"),
], ids=lambda v: " ".join(v) if isinstance(v, tuple) else None)
def test_a_bad_storage_file_or_name_is_one_line_before_any_work(workdir, empty_storage, args, message):
    args = tuple(a.format(workdir=workdir, empty=empty_storage) for a in args)
    done = tuner(workdir, *args)
    assert done.returncode == 2 and len(done.stderr.splitlines()) == 1, done.stderr
    assert done.stderr.startswith("error: ") and message in done.stderr, done.stderr
    assert not (workdir / "tuner_runs").exists()  # no server started
