"""optuna-dashboard, started by `tuner dashboard`, opened in a real headless Chromium (Debian's),
on a study made by a real short search."""
import shutil
import subprocess
import sys
import urllib.request

import pytest
from support import wait_for

from tuner.server.embedded import free_port

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
# this machine has no network: without these, Chromium keeps trying to reach Google's services
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--no-first-run", "--disable-sync", "--disable-quic"]

pytestmark = [pytest.mark.system,
              pytest.mark.skipif(not shutil.which("chromium"), reason="Debian's chromium is not installed "
                                 "(apt-get install chromium); .ci/run installs it")]


@pytest.fixture
def dashboard(tiny_study):
    port = free_port()
    proc = subprocess.Popen([sys.executable, "-m", "tuner", "dashboard", "--storage",
                             f"sqlite:///{tiny_study / 'study.db'}", "--port", str(port)],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    url = f"http://127.0.0.1:{port}"

    def answers() -> bool:
        try:
            urllib.request.urlopen(f"{url}/api/studies", timeout=2)
            return True
        except OSError:
            assert proc.poll() is None, proc.stdout.read()
            return False

    wait_for(answers, "the dashboard to answer", timeout=60)
    yield url
    proc.terminate()
    proc.wait(timeout=10)


def test_dashboard_shows_study_trials_and_pareto_front(dashboard, tmp_path):
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        page = browser.new_page(viewport={"width": 1400, "height": 1000})
        page.goto(f"{dashboard}/dashboard/")
        page.get_by_text("1. tiny").first.wait_for(timeout=30_000)  # the study list
        page.screenshot(path=str(tmp_path / "studies.png"))

        page.goto(f"{dashboard}/dashboard/studies/1")
        page.get_by_text("Pareto Front", exact=False).first.wait_for(timeout=30_000)
        page.locator(".js-plotly-plot").first.wait_for(timeout=30_000)  # the plot itself drew
        page.screenshot(path=str(tmp_path / "study.png"), full_page=True)
        body = page.inner_text("body")
        assert "throughput_infer_per_s" in body and "p95_latency_ms" in body

        page.goto(f"{dashboard}/dashboard/studies/1/trials")
        page.get_by_text("config_pbtxt", exact=False).first.wait_for(timeout=30_000)
        page.screenshot(path=str(tmp_path / "trials.png"), full_page=True)
        browser.close()
    for shot in ("studies.png", "study.png", "trials.png"):
        assert (tmp_path / shot).stat().st_size > 10_000
    shutil.copy(tmp_path / "study.png", tmp_path.parent / "dashboard_study.png")  # kept for a look


def _listening(port: int) -> list[str]:
    """The local addresses (hex, as the kernel lists them) of TCP sockets listening on `port`."""
    rows = [line.split() for name in ("/proc/net/tcp", "/proc/net/tcp6") for line in open(name).readlines()[1:]]
    return [row[1].rpartition(":")[0] for row in rows if int(row[1].rpartition(":")[2], 16) == port
            and row[3] == "0A"]


def test_dashboard_listens_on_loopback_only_by_default(dashboard):
    """What the kernel says the started dashboard listens on, not what the parser's default is."""
    port = int(dashboard.rpartition(":")[2])
    assert _listening(port) == ["0100007F"]  # 127.0.0.1 only
