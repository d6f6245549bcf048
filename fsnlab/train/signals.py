"""Stop signals of a training run: SIGINT/SIGTERM become a request to stop at the next step boundary
with a checkpoint; a second signal stops at once (:class:`TrainingInterrupted`)."""

from __future__ import annotations

import os
import signal
import sys
import threading
from typing import Any

from fsnlab.train.lock import release_all
from fsnlab.train.progress import Progress


class TrainingInterrupted(KeyboardInterrupt):
    """A stop signal ended the run (after its checkpoint, for the first signal). ``signum`` is
    SIGINT or SIGTERM; the command line exits with 128 + signum (130, 143)."""

    def __init__(self, signum: int = signal.SIGINT, message: str = "interrupted") -> None:
        super().__init__(message)
        self.signum = int(signum)


class StopSignals:
    """Turns SIGINT/SIGTERM into a request to stop at the next step boundary (main thread only;
    signals the parent set to be ignored, as ``nohup`` does, stay ignored).

    The first signal is announced at once, even while a long step runs in C++: Python writes the
    signal number to a wakeup pipe from its C-level handler, and a watcher thread reading that pipe
    prints the notice. A second signal stops now: the Python-level handler raises
    :class:`TrainingInterrupted` at the next bytecode, and should the main thread be stuck inside
    one long operation, the watcher removes the run's lock and exits the process (128 + signum)
    after a short grace period; the last checkpoint on disk is complete either way (writes are
    atomic)."""

    GRACE_S = 2.0

    def __init__(self, progress: Progress | None = None) -> None:
        self.requested = False
        self.signum: int | None = None
        self.progress = progress
        self._previous: dict[int, Any] = {}
        self._seen = 0  # signals the watcher saw
        self._pipe: tuple[int, int] | None = None
        self._previous_wakeup = -1
        self._watcher: threading.Thread | None = None
        self._done = threading.Event()

    def _handle(self, signum: int, frame: Any) -> None:
        # Python runs a handler once for signals that arrived together (e.g. two Ctrl-C during one
        # long backward pass), so the watcher's count decides whether this is the second one.
        if self.requested or self._seen >= 2:
            raise TrainingInterrupted(signum, "stopped at once by a second signal")
        self.requested, self.signum = True, signum
        if self._watcher is None:  # no watcher thread: announce from here
            self._announce(signum)

    def _announce(self, signum: int) -> None:
        name = "Ctrl-C" if signum == signal.SIGINT else signal.Signals(signum).name
        self._say(f"fsnlab train: {name}: stopping after this step with a checkpoint (Ctrl-C again to stop now)")

    def _say(self, line: str) -> None:
        if self.progress is not None and not self.progress.enabled:
            return
        bar = getattr(self.progress, "bar", None)
        try:
            if bar is not None:
                bar.write(line, file=sys.stderr)
            else:
                os.write(2, (line + "\n").encode())
        except (OSError, ValueError):
            pass

    def _watch(self, read_fd: int) -> None:
        while not self._done.is_set():
            try:
                data = os.read(read_fd, 64)
            except OSError:
                return
            if not data or self._done.is_set():
                return
            for signum in data:
                if signum not in (signal.SIGINT, signal.SIGTERM):
                    continue  # another handled signal (the wakeup pipe sees them all)
                self._seen += 1
                if self._seen == 1:
                    self._announce(signum)
                    continue
                self._say("fsnlab train: stopping now; the last checkpoint written is kept")
                if not self._done.wait(self.GRACE_S):  # the main thread is stuck in one long call
                    release_all()
                    os._exit(128 + signum)

    def __enter__(self) -> "StopSignals":
        if threading.current_thread() is not threading.main_thread():
            return self
        for sig in (signal.SIGINT, signal.SIGTERM):
            if signal.getsignal(sig) is not signal.SIG_IGN:
                self._previous[sig] = signal.signal(sig, self._handle)
        if not self._previous:
            return self
        try:
            read_fd, write_fd = os.pipe()
            os.set_blocking(write_fd, False)
            self._previous_wakeup = signal.set_wakeup_fd(write_fd, warn_on_full_buffer=False)
        except (OSError, ValueError):
            return self
        self._pipe = (read_fd, write_fd)
        self._watcher = threading.Thread(target=self._watch, args=(read_fd,), name="fsnlab-stop-signals", daemon=True)
        self._watcher.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self._done.set()
        if self._pipe is not None:
            read_fd, write_fd = self._pipe
            try:
                signal.set_wakeup_fd(self._previous_wakeup)
            except (OSError, ValueError):
                signal.set_wakeup_fd(-1)
            try:
                os.write(write_fd, b"\0")  # wake the watcher
            except OSError:
                pass
            if self._watcher is not None:
                self._watcher.join(timeout=1.0)
            os.close(write_fd)
            os.close(read_fd)
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)
