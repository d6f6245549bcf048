"""Export a checkpoint's weights alone to safetensors, with the model config in the metadata."""

from __future__ import annotations

import json
import os
from pathlib import Path

from safetensors.torch import save_model

from fsnlab import __version__
from fsnlab.errors import CheckpointError
from fsnlab.train.checkpoint import load_checkpoint, model_from_checkpoint, resolve_checkpoint


def default_export_path(checkpoint: str | os.PathLike[str]) -> Path:
    """``RUN/checkpoint.safetensors`` for ``RUN`` or ``RUN/checkpoint.pt``; ``X.safetensors`` for ``X.pt``."""
    return resolve_checkpoint(checkpoint).with_suffix(".safetensors")


def export_safetensors(checkpoint: str | os.PathLike[str], out: str | os.PathLike[str] | None = None) -> Path:
    """Write the weights of ``checkpoint`` (a file or run directory) to ``out``; return the path.

    Metadata: ``fsnlab_config`` (the model config JSON), ``fsnlab_version``, ``step``. Tied weights
    are stored once, so read the file back with ``safetensors.torch.load_model(model, path)`` into
    ``build_model(config_from_dict(json.loads(metadata["fsnlab_config"])))``.
    """
    ckpt = load_checkpoint(checkpoint)
    model = model_from_checkpoint(ckpt)
    path = Path(out) if out else default_export_path(checkpoint)
    metadata = {
        "fsnlab_config": json.dumps(ckpt["model_config"], sort_keys=True),
        "fsnlab_version": __version__,
        "step": str(ckpt["step"]),
    }
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        save_model(model, str(path), metadata=metadata)
    except OSError as exc:
        raise CheckpointError(f"cannot write {path}: {exc.strerror or exc}") from None
    return path
