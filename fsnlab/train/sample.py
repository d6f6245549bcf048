"""Autoregressive byte generation from a trained model."""

from __future__ import annotations

import math

import torch

from fsnlab.errors import ConfigError


@torch.no_grad()
def generate(
    model: torch.nn.Module,
    prompt: bytes,
    length: int,
    *,
    temperature: float = 1.0,
    seed: int = 0,
    device: torch.device = torch.device("cpu"),
) -> bytes:
    """``length`` new bytes continuing ``prompt``; the model sees at most its last context_length
    bytes. ``temperature == 0`` decodes greedily; otherwise bytes are drawn from the softmax at that
    temperature with a generator seeded by ``seed`` (same seed, same text)."""
    if not prompt:
        raise ConfigError("the prompt must contain at least one byte")
    if length < 0 or not (math.isfinite(temperature) and temperature >= 0):
        raise ConfigError(f"length must be >= 0 and temperature a finite number >= 0, got {length} and {temperature}")
    model.eval()
    context = model.config.context_length
    generator = torch.Generator(device=device).manual_seed(seed)
    ids = torch.tensor(list(prompt), dtype=torch.long, device=device)[None]
    for _ in range(length):
        logits = model(ids[:, -context:])[0, -1].float()
        if temperature == 0:
            next_id = logits.argmax().view(1, 1)
        else:
            probs = torch.softmax(logits / temperature, dim=-1)
            next_id = torch.multinomial(probs, 1, generator=generator).view(1, 1)
        ids = torch.cat([ids, next_id], dim=1)
    return bytes(ids[0, len(prompt):].tolist())
