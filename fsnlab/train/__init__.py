"""Training, evaluation, sampling and export of fsnlab models (see docs/training.md).

    from fsnlab.train import TrainConfig, train, resume
    result = train(TrainConfig(preset="fsn-tiny", max_steps=100), "runs/demo")
    resume("runs/demo")                    # continue an interrupted run exactly
"""

from fsnlab.train.checkpoint import load_checkpoint, model_from_checkpoint, resolve_checkpoint
from fsnlab.train.config import TrainConfig
from fsnlab.train.evaluate import EvalResult, evaluate
from fsnlab.train.export import export_safetensors
from fsnlab.train.progress import read_metrics
from fsnlab.train.sample import generate
from fsnlab.train.trainer import TrainResult, Trainer, resume, train

__all__ = [
    "TrainConfig",
    "TrainResult",
    "Trainer",
    "train",
    "resume",
    "evaluate",
    "EvalResult",
    "generate",
    "export_safetensors",
    "load_checkpoint",
    "model_from_checkpoint",
    "resolve_checkpoint",
    "read_metrics",
]
