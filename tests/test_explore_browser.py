"""fsnlab explore in a real (headless) browser: train a tiny model, probe it, serve the page with
`fsnlab explore`, and drive Debian's chromium through selenium. Checks the page loads, the animation
plays (the frame advances), clicking a character selects that token in the linked views, and the
browser console has no errors. Saves a screenshot into tmp_path (the README's picture is taken of
the README's own chain instead: scripts/explorer_screenshot.py).

Skipped as a whole without /usr/bin/chromium, /usr/bin/chromedriver or selenium (.ci/run installs
them; locally: apt-get install chromium chromium-driver; pip install selenium)."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"
for _exe in (CHROMIUM, CHROMEDRIVER):
    if not os.access(_exe, os.X_OK):
        pytest.skip(f"browser tests need {_exe} (apt-get install chromium chromium-driver)", allow_module_level=True)
pytest.importorskip("dash")
pytest.importorskip("plotly")
pytest.importorskip("selenium", reason="browser tests need selenium (pip install selenium)")

from selenium import webdriver  # noqa: E402
from selenium.webdriver.chrome.service import Service  # noqa: E402
from selenium.webdriver.common.by import By  # noqa: E402
from selenium.webdriver.support import expected_conditions as EC  # noqa: E402
from selenium.webdriver.support.ui import WebDriverWait  # noqa: E402

from fsnlab.train import TrainConfig, train  # noqa: E402
from explorer_process import running_explorer  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
TEXT = "In the beginning God created the heaven and the earth. And the earth was without form."
WAIT = 60  # seconds: every wait below is bounded by this
PHASES = '[id=\'{"name":"phases","type":"fsn-graph"}\']'
VIEWPORT = (1280, 1080)  # the whole phase circle fits under the header


def _fsnlab(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "fsnlab", *args], cwd=cwd, capture_output=True, text=True, timeout=300)


@pytest.fixture(scope="module")
def probe_file(tmp_path_factory) -> Path:
    """A probe (with attention) of a tiny model trained for a few steps."""
    root = tmp_path_factory.mktemp("browser")
    run = root / "run"
    train(TrainConfig(preset="fsn-tiny", max_steps=5, context_length=32, eval_bytes=2000, device="cpu"), run, quiet=True)
    out = root / "p.zarr"
    r = _fsnlab("probe", str(run), "--text", TEXT, "--stride", "32", "--attention", "--out", str(out), "--quiet", cwd=root)
    assert r.returncode == 0, r.stderr
    return out


@pytest.fixture(scope="module")
def server(probe_file):
    """`fsnlab explore p.zarr --no-browser --port 0` in a subprocess; yields its URL; always stopped."""
    with running_explorer(probe_file, probe_file.parent, wait=WAIT) as url:
        yield url


@pytest.fixture(scope="module")
def driver():
    opts = webdriver.ChromeOptions()
    opts.binary_location = CHROMIUM
    for a in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--disable-background-networking",
              "--disable-component-update", "--disable-sync", "--no-first-run", "--window-size=1280,1080"):
        opts.add_argument(a)
    opts.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    d = webdriver.Chrome(service=Service(CHROMEDRIVER), options=opts)
    try:
        # the viewport (and so the screenshot) is exactly VIEWPORT, whatever the window's decorations
        d.execute_cdp_cmd("Emulation.setDeviceMetricsOverride", {"width": VIEWPORT[0], "height": VIEWPORT[1],
                                                                 "deviceScaleFactor": 1, "mobile": False})
        d.set_page_load_timeout(WAIT)
        d.set_script_timeout(WAIT)
        yield d
    finally:
        d.quit()


@pytest.fixture(scope="module")
def page(driver, server):
    """The loaded page: the phase circle drawn (a figure with data), the text panel filled."""
    driver.get(server)
    wait = WebDriverWait(driver, WAIT)
    wait.until(EC.presence_of_element_located((By.CSS_SELECTOR, PHASES + " .js-plotly-plot")))
    wait.until(lambda d: d.execute_script(_JS_PHASES + "return !!(gd && gd.data && gd.data.length > 1);"))
    wait.until(EC.presence_of_element_located((By.CSS_SELECTOR, "#text-panel [data-pos]")))
    wait.until(lambda d: "selected: t =" in d.find_element(By.ID, "selected-label").text)
    return driver


_JS_PHASES = ("var host = document.getElementById('{\"name\":\"phases\",\"type\":\"fsn-graph\"}');"
              "var gd = host && (host.classList.contains('js-plotly-plot') ? host : host.querySelector('.js-plotly-plot'));")


def _title(d) -> str:
    return d.execute_script(_JS_PHASES + "return gd && gd.layout && gd.layout.title ? gd.layout.title.text : '';") or ""


def _frame(d) -> float:
    return float(d.execute_script("return window.dash_clientside.fsn.player.frame;") or 0)


def _scrubber(d) -> float | None:
    """The scrubber's value as the page shows it (the slider handle's aria-valuenow)."""
    v = d.execute_script("var h = document.querySelector('#frame [role=slider]');"
                         "return h ? h.getAttribute('aria-valuenow') : null;")
    return None if v is None else float(v)


def test_page_loads(page):
    assert "fsnlab" in page.title.lower() or "fsnlab" in page.find_element(By.TAG_NAME, "h1").text
    assert "embed" in _title(page)  # the first stage
    assert len(page.find_elements(By.CSS_SELECTOR, "#text-panel [data-pos]")) > 10


def test_play_advances_the_frame(page):
    wait = WebDriverWait(page, WAIT)
    title0, frames0 = _title(page), page.execute_script("return window.dash_clientside.fsn.player.frames;")
    play = page.find_element(By.ID, "play")
    play.click()
    wait.until(lambda d: "pause" in d.find_element(By.ID, "play").text)
    # the player moves the frame, redraws the figure (stage in its title) and moves the scrubber
    wait.until(lambda d: _frame(d) > 0.5)
    wait.until(lambda d: _title(d) != title0)
    wait.until(lambda d: (_scrubber(d) or 0) > 0)
    assert page.execute_script("return window.dash_clientside.fsn.player.frames;") > frames0
    play.click()
    wait.until(lambda d: "play" in d.find_element(By.ID, "play").text)
    stopped = _frame(page)
    time.sleep(0.5)
    assert _frame(page) == stopped  # paused means paused


def test_clicking_a_character_selects_the_token(page):
    wait = WebDriverWait(page, WAIT)
    spans = page.find_elements(By.CSS_SELECTOR, "#text-panel [data-pos]")
    current = page.find_element(By.ID, "selected-label").text
    target = next(s for s in spans[3:] if f"t = {s.get_attribute('data-pos')} " not in current)
    pos = target.get_attribute("data-pos")
    page.execute_script("arguments[0].scrollIntoView({block: 'center'});", target)
    target.click()
    # linked views: the selection label, the phase circle's ring (trace "t=POS"), the identity summary
    wait.until(lambda d: d.find_element(By.ID, "selected-label").text.startswith(f"selected: t = {pos} "))
    wait.until(lambda d: d.execute_script(_JS_PHASES + "var n = arguments[0]; return gd.data.some(function (t) { return t.name === n; });",
                                          f"t={pos}"))
    wait.until(lambda d: d.find_element(By.ID, "identity-summary").text.strip() != "")
    outline = page.execute_script("return getComputedStyle(arguments[0]).outlineStyle;", target)
    assert outline == "solid"  # highlighted in the text


def test_screenshot_and_no_console_errors(page, tmp_path):
    # show an attention stage (coupling lines of the selected token) in the screenshot
    page.execute_script("window.dash_clientside.set_props('frame', {value: 3});")
    WebDriverWait(page, WAIT).until(lambda d: "couplings of layer" in _title(d))
    time.sleep(1.0)  # let the last redraws settle
    page.execute_script("window.scrollTo(0, 0);")
    shot = tmp_path / "explorer.png"
    assert page.save_screenshot(str(shot)) and shot.stat().st_size > 10_000
    logs = page.get_log("browser")
    severe = [e for e in logs if e.get("level") == "SEVERE" and "favicon" not in e.get("message", "")]
    assert not severe, severe
