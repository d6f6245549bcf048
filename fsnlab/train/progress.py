"""What a run tells its user: a tqdm bar or plain log lines, and ``metrics.jsonl``."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from tqdm import tqdm


def format_duration(seconds: float) -> str:
    seconds = int(max(0, seconds))
    h, rem = divmod(seconds, 3600)
    m, s = divmod(rem, 60)
    return f"{h}h{m:02d}m{s:02d}s" if h else f"{m}m{s:02d}s"


class Progress:
    """A tqdm bar (step, loss, bpc, tokens/s, ETA), or with ``quiet`` plain lines instead.

    Silent unless ``enabled`` (only the main process reports)."""

    def __init__(self, total: int, initial: int, *, quiet: bool, enabled: bool) -> None:
        self.total = total
        self.enabled = enabled
        show_bar = enabled and not quiet
        self.bar = tqdm(total=total, initial=initial, unit="step", dynamic_ncols=True) if show_bar else None

    def step(self, step: int) -> None:
        """Optimizer step ``step`` (1-based) has finished."""
        if self.bar is not None:
            self.bar.update(step - self.bar.n)

    def train_stats(
        self, step: int, loss: float, bpc: float, lr: float, tokens_per_s: float, eta_s: float
    ) -> None:
        if self.bar is not None:
            self.bar.set_postfix(loss=f"{loss:.4f}", bpc=f"{bpc:.3f}", tok_s=f"{tokens_per_s:,.0f}", refresh=False)
        else:
            self.write(
                f"step {step}/{self.total} | loss {loss:.4f} | bpc {bpc:.4f} | lr {lr:.2e} | "
                f"{tokens_per_s:,.0f} tok/s | eta {format_duration(eta_s)}"
            )

    def write(self, line: str) -> None:
        """A line of text that does not break the bar."""
        if not self.enabled:
            return
        if self.bar is not None:
            self.bar.write(line)
        else:
            print(line, flush=True)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


class MetricsLog:
    """``metrics.jsonl``: one JSON object per training-log or evaluation event."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def append(self, record: dict[str, Any]) -> None:
        with open(self.path, "a", encoding="utf-8") as f:
            f.write(json.dumps(record) + "\n")

    def truncate_after(self, step: int) -> None:
        """Drop records past ``step``: a resumed run re-logs them from its checkpoint."""
        if not self.path.exists():
            return
        kept = [r for r in read_metrics(self.path) if r["step"] <= step]
        self.path.write_text("".join(json.dumps(r) + "\n" for r in kept), encoding="utf-8")


def read_metrics(path: Path) -> list[dict[str, Any]]:
    """The records of a ``metrics.jsonl`` (or of a run directory's), skipping a line cut short by a kill."""
    path = path / "metrics.jsonl" if path.is_dir() else path
    records = []
    for line in path.read_text(encoding="utf-8").splitlines():
        try:
            records.append(json.loads(line))
        except ValueError:
            continue
    return records
