"""Save a screenshot of the phase explorer on TARGET (default runs/latest) in headless Chromium:
the picture in the README (docs/img/explorer.png), taken of the README's own chain.

    .venv/bin/fsnlab train && .venv/bin/fsnlab probe runs/latest
    .venv/bin/python scripts/explorer_screenshot.py runs/latest            # -> docs/img/explorer.png

Needs /usr/bin/chromium, /usr/bin/chromedriver (apt-get install chromium chromium-driver) and
selenium (the dev extra). Starts `fsnlab explore TARGET --no-browser --port 0`, waits for the page,
shows block 1's attention step (the selected token's couplings), saves a 1280x1080 PNG, and stops
the server. Every wait is bounded.
"""

from __future__ import annotations

import argparse
import re
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
VIEWPORT = (1280, 1080)
WAIT = 120
PHASES = ("var host = document.getElementById('{\"name\":\"phases\",\"type\":\"fsn-graph\"}');"
          "var gd = host && (host.classList.contains('js-plotly-plot') ? host : host.querySelector('.js-plotly-plot'));")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("target", nargs="?", default="runs/latest", help="what fsnlab explore opens (default: runs/latest)")
    parser.add_argument("--out", default=str(REPO / "docs" / "img" / "explorer.png"), help="PNG to write (default: docs/img/explorer.png)")
    parser.add_argument("--frame", type=float, default=3, help="stage shown (default: 3, blocks.1.attn)")
    args = parser.parse_args()

    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as EC
    from selenium.webdriver.support.ui import WebDriverWait

    proc = subprocess.Popen([sys.executable, "-m", "fsnlab", "explore", args.target, "--no-browser", "--port", "0"],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    driver = None
    try:
        url, deadline = None, time.monotonic() + WAIT
        while url is None and time.monotonic() < deadline and proc.poll() is None:
            m = re.search(r"http://127\.0\.0\.1:\d+/", proc.stdout.readline())
            url = m.group(0) if m else None
        if url is None:
            print(f"explorer_screenshot: fsnlab explore did not start (exit {proc.poll()})", file=sys.stderr)
            return 2
        opts = webdriver.ChromeOptions()
        opts.binary_location = "/usr/bin/chromium"
        for a in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--no-first-run",
                  "--disable-background-networking", f"--window-size={VIEWPORT[0]},{VIEWPORT[1]}"):
            opts.add_argument(a)
        driver = webdriver.Chrome(service=Service("/usr/bin/chromedriver"), options=opts)
        driver.execute_cdp_cmd("Emulation.setDeviceMetricsOverride", {"width": VIEWPORT[0], "height": VIEWPORT[1],
                                                                      "deviceScaleFactor": 1, "mobile": False})
        driver.set_page_load_timeout(WAIT)
        driver.get(url)
        wait = WebDriverWait(driver, WAIT)
        wait.until(EC.presence_of_element_located((By.CSS_SELECTOR, "#text-panel [data-pos]")))
        wait.until(lambda d: d.execute_script(PHASES + "return !!(gd && gd.data && gd.data.length > 1);"))
        wait.until(lambda d: "selected: t =" in d.find_element(By.ID, "selected-label").text)
        driver.execute_script(f"window.dash_clientside.set_props('frame', {{value: {args.frame}}});")
        wait.until(lambda d: "couplings of layer" in (d.execute_script(PHASES + "return gd.layout.title.text;") or ""))
        time.sleep(1.5)  # let the last redraws settle
        driver.execute_script("window.scrollTo(0, 0);")
        out = Path(args.out)
        out.parent.mkdir(parents=True, exist_ok=True)
        if not driver.save_screenshot(str(out)):
            print(f"explorer_screenshot: could not save {out}", file=sys.stderr)
            return 1
        print(f"explorer_screenshot: {args.target} -> {out}")
        return 0
    finally:
        if driver is not None:
            driver.quit()
        proc.terminate()
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
        proc.stdout.close()


if __name__ == "__main__":
    raise SystemExit(main())
