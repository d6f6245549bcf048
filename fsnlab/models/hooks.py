"""Named hook points, in the manner of TransformerLens.

A :class:`HookPoint` is an identity module placed where a layer produces a quantity worth
reading (phases after each sub-step, order parameters, forces, attention weights). Its dotted
module name (``blocks.0.attn.hook_Z0``) is the stable public name of that quantity. Reading a
hook never changes the forward pass: the hook sees the tensor, the layer continues with the
same tensor.

Some quantities are expensive to build (complex order parameters, dense attention weights), so a
layer asks ``hook.active`` first and only materialises them when someone is listening.
"""

from __future__ import annotations

from contextlib import contextmanager
from typing import Callable, Iterable, Iterator

import torch
from torch import nn


class HookPoint(nn.Module):
    """Identity module whose forward hooks receive the tensor passing through."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x

    @property
    def active(self) -> bool:
        return bool(self._forward_hooks)


def hook_points(model: nn.Module) -> dict[str, HookPoint]:
    """All hook points of ``model`` by dotted name."""
    return {name: module for name, module in model.named_modules() if isinstance(module, HookPoint)}


@contextmanager
def capture(
    model: nn.Module,
    names: Iterable[str] | Callable[[str], bool] | None = None,
    detach: bool = True,
) -> Iterator[dict[str, torch.Tensor]]:
    """Record the tensors passing through selected hook points during the ``with`` block.

    ``names`` is an iterable of hook names, a predicate on names, or None for every hook. Unknown
    names raise ``KeyError`` so a typo does not silently capture nothing. The cache maps each name
    to the last tensor seen (detached unless ``detach=False``).
    """
    points = hook_points(model)
    if names is None:
        selected = list(points)
    elif callable(names):
        selected = [n for n in points if names(n)]
    else:
        selected = list(names)
        missing = [n for n in selected if n not in points]
        if missing:
            raise KeyError(f"no hook point named {missing[0]!r}; see fsnlab.models.hook_points(model)")
    cache: dict[str, torch.Tensor] = {}
    handles = []
    for name in selected:

        def record(_module: nn.Module, _inputs: tuple, output: torch.Tensor, name: str = name) -> None:
            cache[name] = output.detach() if detach else output

        handles.append(points[name].register_forward_hook(record))
    try:
        yield cache
    finally:
        for handle in handles:
            handle.remove()
