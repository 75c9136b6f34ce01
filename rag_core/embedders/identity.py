"""What built a vector index: an embedder's name, a hash of its weights and configuration, the
precision it computes in and its dimension (`EmbedderIdentity`).

Two embedders make vectors of the same space exactly when their fingerprints and dimensions
agree; the name is only for people (the same model copied to another folder is the same
embedder). The precision is recorded too: bfloat16 and float32 vectors of one model differ by
little (cosine >= 0.9999 for all-MiniLM-L6-v2) but are not the same numbers.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Callable
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

from rag_core.errors import ModelLoadError

__all__ = ["EmbedderIdentity", "embedder_identity", "folder_fingerprint"]

# Files of a model folder that do not change what it computes.
_SKIPPED_SUFFIXES = (".md", ".txt.lock", ".lock")
_CHUNK = 1 << 20


@dataclass(frozen=True)
class EmbedderIdentity:
    """What made (or makes) the vectors of an index."""

    name: str  # for people: 'sentence-transformers/all-MiniLM-L6-v2', a folder, a HF id
    source: str  # the RAGCHAT_EMBEDDER value that loads it again ('default', a folder, an id)
    fingerprint: str  # sha256 of its weights and configuration
    precision: str  # 'float32' or 'bfloat16'
    dimension: int

    def same_space(self, other: EmbedderIdentity) -> bool:
        """Whether vectors of the two are comparable: same weights and configuration."""
        return self.fingerprint == other.fingerprint and self.dimension == other.dimension

    def same(self, other: EmbedderIdentity) -> bool:
        """Same space and the same precision: nothing to re-embed."""
        return self.same_space(other) and self.precision == other.precision

    def describe(self) -> str:
        """One line naming it: 'NAME (weights 1a2b3c4d5e6f, 384 dimensions, float32)'."""
        return (
            f"{self.name} (weights {self.fingerprint[:12]}, {self.dimension} dimensions,"
            f" {self.precision})"
        )


def _files(folder: Path) -> list[Path]:
    """The files of a model folder that define it, in a stable order (hidden files, notes and
    locks left out)."""
    out = []
    for path in sorted(folder.rglob("*")):
        rel = path.relative_to(folder)
        if any(part.startswith(".") for part in rel.parts) or not path.is_file():
            continue
        if path.name.lower().endswith(_SKIPPED_SUFFIXES):
            continue
        out.append(path)
    return out


@lru_cache(maxsize=32)
def _cached_fingerprint(folder: str, stamp: tuple[tuple[str, int, int], ...]) -> str:
    digest = hashlib.sha256()
    for rel, _size, _mtime in stamp:
        digest.update(rel.encode("utf-8") + b"\0")
        with open(os.path.join(folder, rel), "rb") as f:
            while block := f.read(_CHUNK):
                digest.update(block)
        digest.update(b"\0")
    return digest.hexdigest()


def folder_fingerprint(folder: Path) -> str:
    """sha256 over the names and contents of a model folder's files (weights, configuration,
    tokenizer). all-MiniLM-L6-v2 (~90 MB): ~0.2 s; computed once per process while the files
    keep their sizes and times."""
    folder = Path(folder).resolve()
    if not folder.is_dir():
        raise ModelLoadError(f"embedder folder {folder} does not exist")
    stamp = tuple(
        (str(p.relative_to(folder)), p.stat().st_size, p.stat().st_mtime_ns) for p in _files(folder)
    )
    if not stamp:
        raise ModelLoadError(f"embedder folder {folder} holds no files")
    return _cached_fingerprint(str(folder), stamp)


def embedder_identity(embedder: Any) -> EmbedderIdentity:
    """The identity of any Embedder: its own `identity()` when it has one, else one made from
    its class, name and dimension (for embedders that are pure functions of their name)."""
    own: Callable[[], EmbedderIdentity] | None = getattr(embedder, "identity", None)
    if callable(own):
        return own()
    name = str(getattr(embedder, "name", type(embedder).__name__))
    dimension = int(embedder.dimension)
    key = f"{type(embedder).__module__}.{type(embedder).__qualname__}:{name}:{dimension}"
    return EmbedderIdentity(
        name=name,
        source=name,
        fingerprint=hashlib.sha256(key.encode("utf-8")).hexdigest(),
        precision=str(getattr(embedder, "precision", "float32")),
        dimension=dimension,
    )
