"""Training-step throughput, FLOP efficiency and peak memory of every family, side by side (issues 8, 14).

    python bench/throughput.py --rungs 1m --contexts 512 2048 --steps 4          # CPU, fp32
    python bench/throughput.py --device cuda --dtype bf16 --compile both --rungs 1m --contexts 512 2048
    python bench/throughput.py --markdown                    # the README table from the newest run recorded

For each rung and context length the four families (``transformer``, ``ka``, ``fsn``, ``fsn-mf``) are
built in one process and timed **interleaved**: every round runs one full training step of each
family (forward + backward + AdamW, the order rotating from round to round), after ``--warmup``
untimed rounds (which compile, with ``--compile``), and the median of ``--steps`` rounds is reported.
Slow drift of the machine (other load, thermal state) then hits every family alike.

Per family and context it prints tokens/s, the *necessary* training FLOPs per token
(:func:`fsnlab.models.flops`, 3 x forward), the achieved GFLOP/s (tokens/s x FLOPs/token), the
tokens/s ratio to the transformer of the same rung, the efficiency relative to the transformer
(ratio of achieved GFLOP/s) and the parity ratio (the tokens/s ratio at equal efficiency, i.e. the
transformer's FLOPs/token over the family's), and the peak memory growth of a training step:

* CUDA: ``torch.cuda.max_memory_allocated`` during the step minus what was allocated before it;
* CPU, ``--memory inprocess`` (the default on Linux): freed heap is returned to the OS
  (``malloc_trim``), the peak RSS is reset (``/proc/self/clear_refs``) and the step's peak RSS
  (``VmHWM``) minus the RSS before it is taken, on the timed steps themselves;
* ``--memory subprocess``: a fresh process per preset runs one warm-up and one step and reports the
  growth of its peak RSS (``VmHWM``; like the first table of issue 8); ``--memory none`` skips it.

Every result is appended as one JSON line (``kind: "train_step"``) to
``bench/results/throughput.jsonl`` with device, torch version, commit, date and the command; old rows
are kept. ``--markdown`` prints the README's performance table from the newest run in that file (or
the one chosen with ``--commit``/``--command``/``--device-match``) and the command that made it.
``--layer`` adds the layer micro-benchmark (one FSN attention step against one SDPA call). This is a
benchmark, not a test: nothing here asserts.
"""

from __future__ import annotations

import argparse
import contextlib
import ctypes
import datetime
import json
import os
import resource
import shlex
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from fsnlab.models import FSNConfig, build_model, flops, get_preset, parameter_breakdown  # noqa: E402
from fsnlab.train.environment import cpu_name, git_commit  # noqa: E402

FAMILIES = ("transformer", "ka", "fsn", "fsn-mf")
RESULTS = ROOT / "bench" / "results" / "throughput.jsonl"
DTYPES = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}


# -- environment ---------------------------------------------------------------------------------------


def device_name(device: torch.device) -> str:
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    return f"{cpu_name()} ({torch.get_num_threads()} threads)"


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _split(values: list[str]) -> list[str]:
    """``["512", "2048"]`` or ``["512,2048"]`` -> ``["512", "2048"]``."""
    return [v for item in values for v in item.split(",") if v]


# -- CPU memory ------------------------------------------------------------------------------------------


class CpuPeakMemory:
    """Peak RSS growth of a code section, in process: trim the heap, reset the high-water mark, read it.

    Linux only (``/proc/self/clear_refs`` and glibc's ``malloc_trim``); :meth:`available` says whether it
    works here. Without the trim, memory freed by one family's step would stay resident and hide the
    next family's growth.
    """

    def __init__(self) -> None:
        self._page = os.sysconf("SC_PAGE_SIZE") if hasattr(os, "sysconf") else 4096
        try:
            self._libc = ctypes.CDLL("libc.so.6")
            self._libc.malloc_trim(0)
        except (OSError, AttributeError):
            self._libc = None

    def available(self) -> bool:
        return self._libc is not None and self._reset() and self._hwm() is not None

    def _reset(self) -> bool:
        try:
            Path("/proc/self/clear_refs").write_text("5")
            return True
        except OSError:
            return False

    def _rss(self) -> int:
        return int(Path("/proc/self/statm").read_text().split()[1]) * self._page

    def _hwm(self) -> int | None:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
        return None

    @contextlib.contextmanager
    def measure(self, out: list[float]):
        """Append the section's peak RSS growth (MiB) to ``out``."""
        self._libc.malloc_trim(0)
        self._reset()
        base = self._rss()
        yield
        out.append(max(0, (self._hwm() or base) - base) / 2**20)


@contextlib.contextmanager
def cuda_peak_memory(device: torch.device, out: list[float]):
    torch.cuda.reset_peak_memory_stats(device)
    base = torch.cuda.memory_allocated(device)
    yield
    out.append((torch.cuda.max_memory_allocated(device) - base) / 2**20)


# -- one family ------------------------------------------------------------------------------------------


class Setup:
    """One preset's model, optimizer and step at one context length."""

    def __init__(self, preset: str, T: int, batch: int, device: torch.device, dtype: torch.dtype, compile_: bool):
        torch.manual_seed(0)
        self.preset, self.T, self.batch, self.device = preset, T, batch, device
        self.model = build_model(preset, context_length=T).to(device).train()
        self.params = parameter_breakdown(self.model)["total"]
        self.optimizer = torch.optim.AdamW(
            self.model.parameters(), lr=1e-3, **({"fused": True} if device.type == "cuda" else {"foreach": True})
        )
        self.module = torch.compile(self.model, dynamic=False) if compile_ else self.model
        self.amp = (
            torch.autocast(device.type, dtype=dtype) if dtype != torch.float32 else contextlib.nullcontext()
        )
        gen = torch.Generator().manual_seed(0)
        data = torch.randint(0, 256, (batch, T + 1), generator=gen).to(device)
        self.x, self.y = data[:, :-1], data[:, 1:]
        self.times: list[float] = []
        self.memory: list[float] = []
        self.faults: list[int] = []
        self.loss = float("nan")
        self.error: str | None = None

    def step(self) -> torch.Tensor:
        with self.amp:
            logits = self.module(self.x)
        loss = F.cross_entropy(logits.float().flatten(0, 1), self.y.flatten())
        loss.backward()
        self.optimizer.step()
        self.optimizer.zero_grad(set_to_none=True)
        return loss.detach()

    def timed_step(self) -> None:
        """One step, timed, with the minor page faults it took (``getrusage``; the process's, so the
        step's own when families run one after another)."""
        _sync(self.device)
        faults = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
        t = time.perf_counter()
        loss = self.step()
        _sync(self.device)
        elapsed = time.perf_counter() - t
        self.faults.append(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - faults)
        self.times.append(elapsed)
        self.loss = float(loss)

    def memory_step(self, memory: Any) -> None:
        """One untimed step whose peak memory growth ``memory(out)`` (a context manager) records. Kept
        apart from the timed steps: the CPU meter trims the heap first, and the step after a trim pays
        page faults a training loop never pays."""
        with memory(self.memory):
            self.step()
            _sync(self.device)


def _error_text(exc: BaseException) -> str:
    text = f"{type(exc).__name__}: {exc}".strip()
    return text.splitlines()[0][:300]


def measure_group(
    presets: list[str], T: int, tokens_per_step: int, device: torch.device, dtype: torch.dtype, compile_: bool,
    steps: int, warmup: int, memory: str,
) -> dict[str, dict[str, Any]]:
    """Time ``presets`` interleaved at context ``T``; one result dict per preset."""
    batch = max(1, tokens_per_step // T)
    setups: dict[str, Setup] = {}
    results: dict[str, dict[str, Any]] = {}
    for preset in presets:
        try:
            setups[preset] = Setup(preset, T, batch, device, dtype, compile_)
        except Exception as exc:  # noqa: BLE001 - a benchmark records failures and goes on
            results[preset] = {"error": _error_text(exc)}
    meter: Any = None
    if memory == "inprocess":
        if device.type == "cuda":
            meter = lambda out: cuda_peak_memory(device, out)  # noqa: E731
        else:
            cpu = CpuPeakMemory()
            meter = cpu.measure if cpu.available() else None
            if meter is None:
                memory = "none"

    def run(setup: Setup, mode: str) -> None:
        if setup.error:
            return
        try:
            if mode == "timed":
                setup.timed_step()
            elif mode == "memory":
                setup.memory_step(meter)
            else:
                setup.step()
                _sync(device)
        except Exception as exc:  # noqa: BLE001 (torch.OutOfMemoryError included)
            setup.error = "out of memory" if isinstance(exc, torch.OutOfMemoryError) else _error_text(exc)
            setup.model.zero_grad(set_to_none=True)
            if device.type == "cuda":
                torch.cuda.empty_cache()

    order = list(setups.values())
    for _ in range(warmup):
        for setup in order:
            run(setup, "warmup")
    for i in range(steps if order else 0):
        for setup in order[i % len(order):] + order[: i % len(order)]:  # rotate who goes first
            run(setup, "timed")
    for setup in order if meter is not None else []:  # peak memory: one more step each, untimed
        run(setup, "memory")

    for preset, setup in setups.items():
        if setup.error or not setup.times:
            results[preset] = {"error": setup.error or "no timed step"}
            continue
        sec = statistics.median(setup.times)
        results[preset] = {
            "batch": batch,
            "tokens_per_step": batch * T,
            "params": setup.params,
            "steps": len(setup.times),
            "sec_per_step": sec,
            "step_seconds": [round(t, 6) for t in setup.times],
            "tokens_per_s": batch * T / sec,
            "minor_faults_per_step": int(statistics.median(setup.faults)),
            "loss": setup.loss,
        }
        if setup.memory:
            results[preset].update(peak_mem_mb=max(setup.memory), memory_method=_memory_method(device, memory))
    del setups
    if compile_:
        torch._dynamo.reset()
    if device.type == "cuda":
        torch.cuda.empty_cache()
    return results


def _memory_method(device: torch.device, memory: str) -> str:
    if device.type == "cuda":
        return "cuda max_memory_allocated growth during a step"
    return {"inprocess": "peak RSS growth during a step (VmHWM after malloc_trim)",
            "subprocess": "peak RSS growth over a warm-up and a step, fresh process per preset (VmHWM)"}.get(memory, memory)


def memory_in_subprocess(preset: str, T: int, tokens: int, dtype: str, compile_: bool) -> dict[str, Any]:
    """CPU peak RSS growth of one warm-up and one training step in a fresh process."""
    cmd = [sys.executable, str(Path(__file__).resolve()), "--one", preset, str(T), str(tokens), dtype, str(int(compile_))]
    res = subprocess.run(cmd, capture_output=True, text=True)
    if res.returncode:
        lines = res.stderr.strip().splitlines()
        return {"error": lines[-1] if lines else f"exit {res.returncode}"}
    return json.loads(res.stdout.strip().splitlines()[-1])


def _one(preset: str, T: int, tokens: int, dtype: str, compile_: bool) -> dict[str, Any]:
    """The ``--one`` child: peak RSS growth over one warm-up and one training step in this fresh process.

    The high-water mark is read from ``VmHWM`` where it can be reset: ``ru_maxrss`` of a child started
    by a large parent already holds the parent's peak (Linux carries it over fork and exec).
    """
    setup = Setup(preset, T, max(1, tokens // T), torch.device("cpu"), DTYPES[dtype], compile_)
    meter = CpuPeakMemory()
    if meter.available():
        growth: list[float] = []
        with meter.measure(growth):
            setup.step()
            setup.timed_step()
        peak = growth[0]
    else:
        rss0 = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        setup.step()
        setup.timed_step()
        peak = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - rss0) / 1024
    return {"peak_mem_mb": peak, "sec_per_step": setup.times[-1]}


# -- the layer micro-benchmark --------------------------------------------------------------------------


def time_layer(T: int, device: torch.device, dtype: torch.dtype, steps: int) -> dict[str, Any]:
    """One FSN attention step (fsn-1m width, full kernel) vs one SDPA call of the same head width."""
    from fsnlab.models.fsn import FSNAttention

    cfg = FSNConfig(d_phase=192, n_head=4, kernel="full").validate()
    layer = FSNAttention(cfg).to(device)
    B = max(1, 8192 // T)
    theta = torch.randn(B, T, cfg.d_phase, device=device, requires_grad=True)
    q = torch.randn(B, cfg.n_head, T, 2 * cfg.head_dim, device=device, requires_grad=True)
    k, v = torch.randn_like(q), torch.randn_like(q)
    amp = torch.autocast(device.type, dtype=dtype) if dtype != torch.float32 else contextlib.nullcontext()

    def fsn() -> None:
        with amp:
            layer(theta).sum().backward()

    def sdpa() -> None:
        F.scaled_dot_product_attention(q.to(dtype), k.to(dtype), v.to(dtype), is_causal=True).float().sum().backward()

    out: dict[str, Any] = {"context_length": T, "batch": B, "head_width": 2 * cfg.head_dim}
    for name, fn in (("fsn_layer", fsn), ("sdpa", sdpa)):
        fn()
        times = []
        for _ in range(steps):
            _sync(device)
            t = time.perf_counter()
            fn()
            _sync(device)
            times.append(time.perf_counter() - t)
        out[f"{name}_ms"] = 1e3 * statistics.median(times)
    out["ratio"] = out["fsn_layer_ms"] / out["sdpa_ms"]
    return out


# -- rows and printing -----------------------------------------------------------------------------------


def add_flops(row: dict[str, Any], ref: dict[str, Any] | None) -> dict[str, Any]:
    """Necessary FLOPs/token, achieved GFLOP/s, and the ratios to the transformer row ``ref`` (in place)."""
    count = flops(row["preset"], row["context_length"])
    row["flops_per_token"] = count.training
    row["flops_per_token_attention"] = count.training_attention
    row["flops_per_token_non_attention"] = count.training_non_attention
    if "tokens_per_s" in row:
        row["achieved_gflops"] = row["tokens_per_s"] * count.training / 1e9
    if ref and "tokens_per_s" in ref and "tokens_per_s" in row:
        ref_count = flops(ref["preset"], ref["context_length"])
        row["ratio_to_transformer"] = row["tokens_per_s"] / ref["tokens_per_s"]
        row["parity_ratio"] = ref_count.training / count.training
        row["efficiency_to_transformer"] = row["achieved_gflops"] / (ref["tokens_per_s"] * ref_count.training / 1e9)
    return row


def fmt_row(r: dict[str, Any]) -> str:
    head = f"{r['preset']:<16} T={r['context_length']:<5} {r.get('dtype', 'fp32')} compile={int(r.get('compile', False))}"
    if "error" in r:
        return f"{head}  ERROR {r['error']}"
    ratio, eff, parity = r.get("ratio_to_transformer"), r.get("efficiency_to_transformer"), r.get("parity_ratio")
    mem = r.get("peak_mem_mb")
    return (
        f"{head}  {r['tokens_per_s']:>11,.0f} tok/s  {'' if ratio is None else f'{ratio:5.3f}x':>6} tok/s"
        f"  {r['flops_per_token'] / 1e6:6.1f} MFLOP/tok  {r['achieved_gflops']:8.2f} GFLOP/s"
        f"  eff {'' if eff is None else f'{eff:5.2f}x':>6} (parity {'' if parity is None else f'{parity:5.3f}x':>6})"
        f"  peak {'n/a' if mem is None else f'{mem:,.0f} MB':>9}"
        + (f"  {r['minor_faults_per_step']:>9,} faults/step" if "minor_faults_per_step" in r else "")
    )


# -- the README table ------------------------------------------------------------------------------------


def read_rows(path: Path) -> list[dict[str, Any]]:
    rows = []
    for line in path.read_text().splitlines():
        line = line.strip()
        if line:
            rows.append(json.loads(line))
    return rows


def markdown_table(rows: list[dict[str, Any]], commit: str | None = None, command: str | None = None,
                   device: str | None = None) -> str:
    """The performance table of the newest matching run (rows sharing date, commit and command)."""
    rows = [r for r in rows if r.get("kind") == "train_step"]
    if commit:
        rows = [r for r in rows if str(r.get("commit", "")).startswith(commit)]
    if command:
        rows = [r for r in rows if command in r.get("command", "")]
    if device:
        rows = [r for r in rows if device.lower() in r.get("device", "").lower()]
    if not rows:
        raise SystemExit("no train_step rows match")
    key = lambda r: (r.get("date", ""), r.get("commit", ""), r.get("command", ""))  # noqa: E731
    newest = max(key(r) for r in rows)
    run = [r for r in rows if key(r) == newest]
    order = {f: i for i, f in enumerate(FAMILIES)}
    groups: dict[tuple, list[dict[str, Any]]] = {}
    for r in run:
        groups.setdefault((r["context_length"], r.get("dtype", "fp32"), bool(r.get("compile", False))), []).append(r)
    r0 = run[0]
    lines = [
        f"Measured with `{r0['command']}`" if r0.get("command") else "Measured with an unrecorded command",
        f"at commit `{str(r0.get('commit', '?'))[:12]}` on {r0.get('device', '?')} (torch {r0.get('torch', '?')}),"
        f" {r0.get('date', '?')}; the rows are in `bench/results/throughput.jsonl`.",
        "",
        "| preset | T | dtype | compile | tokens/s | vs transformer | MFLOP/token | GFLOP/s | efficiency | parity | peak memory growth |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for (T, dtype, comp), group in sorted(groups.items()):
        ref = next((r for r in group if r["preset"].startswith("transformer-")), None)
        family = lambda r: r["preset"].rsplit("-", 1)[0]  # noqa: E731
        for r in sorted(group, key=lambda r: (order.get(family(r), 99), r["preset"])):
            r = add_flops(dict(r), ref)
            cells = [f"`{r['preset']}`", f"{T:,}", dtype, "on" if comp else "off"]
            if "error" in r:
                cells += [f"error: {r['error']}"] + [""] * 6
            else:
                cells += [
                    f"{r['tokens_per_s']:,.0f}",
                    _x(r.get("ratio_to_transformer"), 2),
                    f"{r['flops_per_token'] / 1e6:.1f}",
                    f"{r['achieved_gflops']:.1f}",
                    _x(r.get("efficiency_to_transformer"), 2),
                    _x(r.get("parity_ratio"), 2),
                    "n/a" if r.get("peak_mem_mb") is None else f"{r['peak_mem_mb']:,.0f} MB",
                ]
            lines.append("| " + " | ".join(cells) + " |")
    lines += [
        "",
        "MFLOP/token: the necessary training FLOPs per token (`fsnlab.models.flops`, 3 x forward); GFLOP/s = "
        "tokens/s x MFLOP/token; efficiency: GFLOP/s relative to the transformer; parity: the tokens/s ratio "
        "at equal efficiency.",
    ]
    return "\n".join(lines)


def _x(value: float | None, digits: int) -> str:
    return "" if value is None else f"{value:.{digits}f}×"


# -- main ------------------------------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter,
                                 epilog=__doc__.split("\n\n", 1)[1])
    ap.add_argument("--rungs", nargs="+", default=["1m"], help="rungs, space- or comma-separated (default: 1m)")
    ap.add_argument("--contexts", nargs="+", default=["512", "2048"], help="context lengths (default: 512 2048)")
    ap.add_argument("--families", nargs="+", default=list(FAMILIES), help=f"families (default: {' '.join(FAMILIES)})")
    ap.add_argument("--device", default="auto", choices=("auto", "cpu", "cuda"), help="auto: CUDA when present, else CPU")
    ap.add_argument("--dtype", choices=tuple(DTYPES), default=None, help="autocast dtype (default: bf16 on CUDA, fp32 on CPU)")
    ap.add_argument("--compile", nargs="?", const="on", default="off", choices=("off", "on", "both"),
                    help="torch.compile the models: --compile (on), --compile both (off, then on)")
    ap.add_argument("--tokens-per-step", type=int, default=None, help="default: 8192 on CPU, 65536 on CUDA")
    ap.add_argument("--steps", type=int, default=4, help="timed interleaved rounds; the median is reported (default: 4)")
    ap.add_argument("--warmup", type=int, default=1, help="untimed rounds first (default: 1)")
    ap.add_argument("--memory", choices=("inprocess", "subprocess", "none"), default="inprocess",
                    help="how to measure peak memory on CPU (CUDA is always in process)")
    ap.add_argument("--layer", action="store_true", help="also run the layer micro-benchmark")
    ap.add_argument("--out", default=str(RESULTS), help="jsonl to append to (default: bench/results/throughput.jsonl)")
    ap.add_argument("--no-record", action="store_true", help="print only; append nothing")
    ap.add_argument("--markdown", action="store_true", help="print the README table from --out and exit")
    ap.add_argument("--commit", help="--markdown: the newest run at a commit starting with this")
    ap.add_argument("--command", help="--markdown: the newest run whose command contains this")
    ap.add_argument("--device-match", help="--markdown: the newest run on a device whose name contains this")
    ap.add_argument("--one", nargs=5, metavar=("PRESET", "T", "TOKENS", "DTYPE", "COMPILE"), help=argparse.SUPPRESS)
    args = ap.parse_args(argv)

    if args.markdown:
        print(markdown_table(read_rows(Path(args.out)), args.commit, args.command, args.device_match))
        return 0
    if args.one:
        preset, T, tokens, dtype, comp = args.one
        print(json.dumps(_one(preset, int(T), int(tokens), dtype, comp == "1")))
        return 0

    if args.device == "cuda" and not torch.cuda.is_available():
        ap.error("--device cuda: no CUDA device")
    device = torch.device("cuda" if args.device == "cuda" or (args.device == "auto" and torch.cuda.is_available()) else "cpu")
    dtype_name = args.dtype or ("bf16" if device.type == "cuda" else "fp32")
    dtype = DTYPES[dtype_name]
    tokens = args.tokens_per_step or (8192 if device.type == "cpu" else 65536)
    compiles = {"off": (False,), "on": (True,), "both": (False, True)}[args.compile]
    contexts = [int(t) for t in _split(args.contexts)]
    families = _split(args.families)
    for rung in _split(args.rungs):
        for family in families:
            try:
                get_preset(f"{family}-{rung}")  # fail early on a bad name
            except Exception as exc:  # noqa: BLE001 - ConfigError
                ap.error(str(exc))
    meta = {
        "torch": torch.__version__,
        "cuda": torch.version.cuda,
        "commit": git_commit(),
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "command": shlex.join(["python", *sys.argv]) if argv is None else shlex.join(["python", "bench/throughput.py", *argv]),
    }
    memory = args.memory if device.type == "cpu" else "inprocess"
    print(f"{device_name(device)}, {dtype_name}, {tokens:,} tokens per step, median of {args.steps} interleaved rounds", flush=True)
    rows: list[dict[str, Any]] = []

    def record(new_rows: list[dict[str, Any]]) -> None:
        """Append as soon as a group is done: a run cut short keeps what it measured."""
        rows.extend(new_rows)
        if not args.no_record and new_rows:
            Path(args.out).parent.mkdir(parents=True, exist_ok=True)
            with open(args.out, "a") as f:
                for row in new_rows:
                    f.write(json.dumps(row) + "\n")

    for rung in _split(args.rungs):
        presets = [f"{family}-{rung}" for family in families]
        for comp in compiles:  # every context without compile first: compiling is the slow part
            for T in contexts:
                results = measure_group(presets, T, tokens, device, dtype, comp, args.steps, args.warmup,
                                        "inprocess" if memory == "inprocess" else "none")
                if memory == "subprocess":
                    for preset, r in results.items():
                        if "error" not in r:
                            sub = memory_in_subprocess(preset, T, tokens, dtype_name, comp)
                            r["peak_mem_mb"] = sub.get("peak_mem_mb")
                            r["memory_method"] = _memory_method(device, "subprocess")
                ref_preset = f"transformer-{rung}"
                ref = {"preset": ref_preset, "context_length": T, **results[ref_preset]} if ref_preset in results else None
                group = []
                for preset in presets:
                    row = {"kind": "train_step", "device": device_name(device), **meta, "preset": preset,
                           "family": preset.rsplit("-", 1)[0], "rung": rung, "context_length": T,
                           "dtype": dtype_name, "compile": comp, **results[preset]}
                    add_flops(row, ref)
                    group.append(row)
                    print(fmt_row(row), flush=True)
                record(group)
    if args.layer:
        for T in contexts:
            row = {"kind": "layer", "device": device_name(device), **meta, "dtype": dtype_name,
                   **time_layer(T, device, dtype, args.steps)}
            print(f"layer T={T:<5} fsn {row['fsn_layer_ms']:9.2f} ms  sdpa {row['sdpa_ms']:9.2f} ms  ratio {row['ratio']:6.1f}x",
                  flush=True)
            record([row])
    if not args.no_record:
        print(f"appended {len(rows)} rows to {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
