"""The HTML report as a person sees it: rendered by headless Chromium, screenshot and DOM.

Chromium is Debian's ``chromium`` package (``make test`` installs it on CI where it
can); without it these tests skip and say why. A probe script, added to a copy of
the report only, records after the page loads how many images decoded with a
non-zero size and any script error, and ``--dump-dom`` reads that back.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest

from conftest import SCENARIOS
from funnelsim import html_report
from funnelsim.experiment import run_experiment
from funnelsim.scenario import load_scenario

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
pytestmark = pytest.mark.skipif(
    CHROMIUM is None,
    reason="headless Chromium not found (install Debian's chromium package to run this test)",
)
FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--hide-scrollbars",
)
PROBE = """<script>
window.__errors = [];
window.addEventListener("error", e => window.__errors.push(String(e.message)));
window.addEventListener("load", () => {
  const images = Array.from(document.images);
  const shown = images.filter(i => i.complete && i.naturalWidth > 0 && i.naturalHeight > 0
                                   && i.getBoundingClientRect().width > 0);
  const probe = document.createElement("div");
  probe.id = "probe";
  const errors = window.__errors.length;
  probe.textContent = `images=${images.length} shown=${shown.length} errors=${errors}`;
  document.body.appendChild(probe);
});
</script>"""


@pytest.fixture(scope="module")
def page(tmp_path_factory) -> Path:
    scenario = load_scenario(SCENARIOS / "checkout.yaml").with_overrides(
        {"traffic.days": 2, "traffic.visitors_per_day": 1500}
    )
    report = html_report.experiment_report(run_experiment(scenario, replications=4))
    path = tmp_path_factory.mktemp("browser") / "report.html"
    html_report.write_report(report, path)
    return path


def _chromium(args: list[str], profile: Path) -> subprocess.CompletedProcess[str]:
    assert CHROMIUM is not None
    return subprocess.run(
        [CHROMIUM, *FLAGS, f"--user-data-dir={profile}", *args],
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
    )


def test_report_loads_with_every_plot_visible(page: Path, tmp_path: Path) -> None:
    probed = tmp_path / "probed.html"
    probed.write_text(
        page.read_text(encoding="utf-8").replace("</body>", PROBE + "</body>"), encoding="utf-8"
    )
    run = _chromium(
        [
            "--enable-logging=stderr",
            "--v=0",
            "--virtual-time-budget=5000",
            "--dump-dom",
            probed.as_uri(),
        ],
        tmp_path / "profile",
    )
    assert run.returncode == 0, run.stderr[-2000:]
    match = re.search(r'id="probe">images=(\d+) shown=(\d+) errors=(\d+)<', run.stdout)
    assert match, "the probe did not run: " + run.stdout[-500:]
    images, shown, errors = map(int, match.groups())
    assert images >= 7 and shown == images and errors == 0
    console_errors = [
        line
        for line in run.stderr.splitlines()
        if "CONSOLE" in line and ("Uncaught" in line or "ERROR" in line)
    ]
    assert console_errors == []


def test_screenshot_shows_a_rendered_page(page: Path, tmp_path: Path) -> None:
    import matplotlib.image

    shot = tmp_path / "shot.png"
    run = _chromium(
        [f"--screenshot={shot}", "--window-size=1100,1400", page.as_uri()], tmp_path / "profile"
    )
    assert run.returncode == 0, run.stderr[-2000:]
    pixels = matplotlib.image.imread(shot)
    assert pixels.shape[0] == 1400 and pixels.shape[1] == 1100
    # A blank or error page is nearly one colour; the report has text, tables and plots.
    distinct = np.unique((pixels[..., :3] * 255).astype(np.uint8).reshape(-1, 3), axis=0)
    assert len(distinct) > 200
