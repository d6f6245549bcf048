"""`fsnlab explore TARGET --port 0 --no-browser` in a subprocess, for the tests that need a real server."""

from __future__ import annotations

import contextlib
import os
import re
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from typing import Iterator


@contextlib.contextmanager
def running_explorer(target: Path, cwd: Path, wait: float, keep_pythonpath: bool = True) -> Iterator[str]:
    """Start the command, read the URL it prints first, wait until it serves, yield the URL; always stop it.

    ``keep_pythonpath=False`` drops PYTHONPATH, so ``apps`` must be found through fsnlab's entry point.
    """
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    if not keep_pythonpath:
        env.pop("PYTHONPATH", None)
    proc = subprocess.Popen([sys.executable, "-m", "fsnlab", "explore", str(target), "--port", "0", "--no-browser"],
                            cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        url, seen, deadline = None, [], time.monotonic() + wait
        while url is None and time.monotonic() < deadline and proc.poll() is None:
            line = proc.stdout.readline()
            seen.append(line)
            m = re.search(r"http://127\.0\.0\.1:\d+/", line)
            url = m.group(0) if m else None
        assert url, f"no URL from fsnlab explore (exit {proc.poll()}): {''.join(seen)[-2000:]}"
        while True:  # serving?
            try:
                with urllib.request.urlopen(url, timeout=5) as r:
                    if r.status == 200:
                        break
            except OSError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.2)
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=5)
        proc.stdout.close()
