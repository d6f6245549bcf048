"""Memory an FSN keeps for its backward pass: the bytes of every distinct storage autograd saves in one
forward pass, by the source line that saved it (fsnlab.models.fused_force, issue 14).

    python bench/saved_tensors.py fsn-1m transformer-1m --batch 16 --context 512

Deterministic (a count, not a timing); prints a table.
"""

from __future__ import annotations

import argparse
import collections
import traceback

import torch

import fsnlab


def saved_bytes(preset: str, batch: int, context: int) -> tuple[int, collections.Counter]:
    torch.manual_seed(0)
    model = fsnlab.build_model(preset, context_length=context)
    idx = torch.randint(0, 256, (batch, context))
    seen: dict[int, int] = {}
    where: collections.Counter = collections.Counter()

    def pack(t: torch.Tensor) -> torch.Tensor:
        key = t.untyped_storage().data_ptr()
        if key not in seen:
            seen[key] = t.untyped_storage().nbytes()
            frame = next((f for f in reversed(traceback.extract_stack(limit=8)) if "fsnlab" in f.filename), None)
            where[f"{frame.filename.rsplit('/', 1)[-1]}:{frame.lineno}" if frame else "?"] += seen[key]
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        model(idx).logsumexp(-1).mean()
    return sum(seen.values()), where


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("presets", nargs="+")
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--context", type=int, default=512)
    args = parser.parse_args()
    for preset in args.presets:
        total, where = saved_bytes(preset, args.batch, args.context)
        print(f"{preset:18s} B={args.batch} T={args.context}: {total / 2**20:8.1f} MB saved for backward")
        for place, n in where.most_common(4):
            print(f"    {n / 2**20:8.1f} MB  {place}")


if __name__ == "__main__":
    main()
