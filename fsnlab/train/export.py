"""Export a checkpoint's weights alone to safetensors, with the model config in the metadata."""

from __future__ import annotations

import json
import os
from pathlib import Path

from safetensors import SafetensorError
from safetensors.torch import save_model

from fsnlab import __version__
from fsnlab.errors import CheckpointError, one_line
from fsnlab.paths import check_writable
from fsnlab.train.checkpoint import load_checkpoint, model_from_checkpoint, resolve_checkpoint


def default_export_path(checkpoint: str | os.PathLike[str]) -> Path:
    """``RUN/checkpoint.safetensors`` for ``RUN`` or ``RUN/checkpoint.pt``; ``X.safetensors`` for ``X.pt``."""
    return resolve_checkpoint(checkpoint).with_suffix(".safetensors")


def export_safetensors(
    checkpoint: str | os.PathLike[str], out: str | os.PathLike[str] | None = None, *, overwrite: bool = False
) -> Path:
    """Write the weights of ``checkpoint`` (a file or run directory) to ``out``; return the path.

    An existing ``out`` is replaced only with ``overwrite``; the file appears atomically (a
    temporary file in the same directory, renamed into place). Metadata: ``fsnlab_config`` (the
    model config JSON), ``fsnlab_version``, ``step``. Tied weights are stored once, so read the
    file back with ``safetensors.torch.load_model(model, path)`` into
    ``build_model(config_from_dict(json.loads(metadata["fsnlab_config"])))``.
    """
    path = Path(out).expanduser() if out else default_export_path(checkpoint)
    check_output_file(path, overwrite)
    ckpt = load_checkpoint(checkpoint)
    model = model_from_checkpoint(ckpt)
    metadata = {
        "fsnlab_config": json.dumps(ckpt["model_config"], sort_keys=True),
        "fsnlab_version": __version__,
        "step": str(ckpt["step"]),
    }
    tmp = path.with_name(f".{path.name}.tmp")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        open(tmp, "wb").close()  # can this directory be written? (an OSError with a clear reason if not)
        try:
            save_model(model, str(tmp), metadata=metadata)
        except SafetensorError as exc:
            raise OSError(one_line(exc)) from None
        with open(tmp, "rb+") as f:
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except OSError as exc:
        try:
            tmp.unlink(missing_ok=True)
        except OSError:
            pass
        raise CheckpointError(f"cannot write {path}: {exc.strerror or exc}") from None
    return path


def check_output_file(path: Path, overwrite: bool) -> None:
    """Refuse an output file path that cannot be written, or exists without ``overwrite`` (one line)."""
    if path.is_dir():
        raise CheckpointError(f"cannot write {path}: it is a directory")
    if path.exists() or path.is_symlink():
        if not overwrite:
            raise CheckpointError(f"{path} already exists; pass --overwrite to replace it")
        if not path.is_file():
            raise CheckpointError(f"cannot write {path}: it is not a regular file")
    check_writable(path, CheckpointError)
