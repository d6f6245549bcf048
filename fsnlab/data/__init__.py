"""Byte corpora and batching.

``load_corpus(spec)`` returns a :class:`Corpus` with contiguous train/val/test uint8 splits;
``sample_batch`` draws reproducible training windows; ``eval_windows`` covers a split exactly
once. Spec strings and split rules are documented in docs/data.md."""

from fsnlab.data.batches import count_eval_targets, eval_windows, sample_batch
from fsnlab.data.corpus import Corpus, load_corpus

__all__ = ["Corpus", "load_corpus", "sample_batch", "eval_windows", "count_eval_targets"]
