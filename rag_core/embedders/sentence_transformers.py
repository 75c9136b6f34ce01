"""Embedder over sentence-transformers: the packaged all-MiniLM-L6-v2 by default, or any local
folder / cached HF model. Loads lazily on first use; never downloads."""

from __future__ import annotations

import contextlib
import os
import threading
from collections.abc import Iterator, MutableMapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from rag_core.embedders.identity import EmbedderIdentity, folder_fingerprint
from rag_core.errors import ConfigError, ModelLoadError
from rag_core.models import (
    DEFAULT_EMBEDDER_NAME,
    default_embedder_path,
    local_path,
    offline_hint,
    set_offline_env,
)

if TYPE_CHECKING:
    import numpy as np
    import numpy.typing as npt

_LAZY = frozenset({"dimension", "max_tokens"})
PRECISIONS = ("auto", "float32", "bfloat16")
# a slow tokenizer asked for token counts only: no special tokens, no cut, nothing extra
_NO_CHANGES = ("add_special_tokens", "truncation", "padding")
_NO_EXTRAS = ("return_attention_mask", "return_token_type_ids", "verbose")
_COUNT_ONLY = dict.fromkeys((*_NO_CHANGES, *_NO_EXTRAS), False)


def native_bfloat16(device: str = "cpu") -> bool:
    """Whether `device` computes bfloat16 natively (CPU: AVX512-BF16 or AMX; CUDA: Ampere+).

    Without it bfloat16 is emulated and slower than float32, so 'auto' keeps float32 there.
    """
    import torch

    if device.startswith("cuda"):
        return bool(torch.cuda.is_available() and torch.cuda.is_bf16_supported())
    if device != "cpu":
        return False
    cpu = torch.cpu
    checks = ("_is_avx512_bf16_supported", "_is_amx_tile_supported")
    return any(bool(getattr(cpu, name, lambda: False)()) for name in checks)


def use_passive_openmp() -> None:
    """Let OpenMP worker threads sleep instead of spin between parallel regions (unless the user
    set OMP_WAIT_POLICY). Read once, when torch is first imported, so it is set before that.

    Measured on a shared 2-core machine (bench/): with spinning threads, a query embedding in the
    main thread took 200-550 ms instead of 17-21 ms, and decoding ran 3-6x slower.
    """
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")


def resolve_precision(precision: str, device: str = "cpu") -> str:
    """'float32' or 'bfloat16' for a requested precision ('auto' decided by the device)."""
    if precision == "auto":
        return "bfloat16" if native_bfloat16(device) else "float32"
    return precision


def _encoder_to_bfloat16(st: Any) -> None:
    """Convert the model's first module (the transformer, which holds nearly all weights) to
    bfloat16, and cast what it outputs back to float32, so pooling, normalisation and any later
    layers run in float32 as before."""
    import torch

    def outputs_to_float32(module: Any, args: Any, output: Any) -> Any:
        if isinstance(output, MutableMapping):  # a dict, or the tokenizer's BatchEncoding
            for key, value in list(output.items()):
                if isinstance(value, torch.Tensor) and value.dtype == torch.bfloat16:
                    output[key] = value.float()
        return output

    st[0].to(torch.bfloat16)
    st[0].register_forward_hook(outputs_to_float32)


class SentenceTransformerEmbedder:
    """Normalized float32 sentence embeddings (cosine similarity == dot product).

    ``model`` is 'default', a local folder or a HF id already in the local HF cache. The model is
    loaded on first use, once, under a lock. ``dimension`` and ``max_tokens`` (the model's
    max_seq_length) are filled in on first access, which loads the model. Calls are serialized
    with a lock: the fast tokenizer is not safe to use from several threads at once.

    ``precision``: 'float32', 'bfloat16' (the encoder's weights are converted to bfloat16 once at
    load; pooling and normalisation run on its output cast to float32), or 'auto': bfloat16 where
    the device computes it natively, else float32. all-MiniLM-L6-v2 on an AVX512-BF16 CPU: about
    2.4x the passages/s of float32, every embedding at cosine >= 0.9999 to its float32 one (600
    pyfaq sections). Converted weights beat running the float32 model under torch.autocast (which
    casts every weight on every call): a query embeds in ~5.1 ms instead of ~6.2 ms.
    """

    name: str
    dimension: int
    max_tokens: int

    def __init__(
        self,
        model: str = "default",
        *,
        device: str = "cpu",
        batch_size: int = 16,
        precision: str = "auto",
    ) -> None:
        if not isinstance(model, str) or not model.strip():
            raise ConfigError(f"embedder must be 'default', a folder or a model id, got {model!r}")
        if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
            raise ConfigError(f"embed batch_size must be a positive integer, got {batch_size!r}")
        if precision not in PRECISIONS:
            raise ConfigError(
                f"embed precision must be one of {', '.join(PRECISIONS)}, got {precision!r}"
            )
        self.model = model
        self.device = device
        self.batch_size = batch_size
        self.requested_precision = precision
        self._precision: str | None = None
        self.name = DEFAULT_EMBEDDER_NAME if model == "default" else model
        self._st: Any = None
        self._lock = threading.RLock()

    def __getattr__(self, attr: str) -> Any:
        # Only called for attributes not set yet: dimension/max_tokens before the model is loaded.
        if attr in _LAZY:
            self._load()
            return self.__dict__[attr]
        raise AttributeError(f"{type(self).__name__!r} object has no attribute {attr!r}")

    def _source(self) -> tuple[str, bool]:
        """(what to pass to SentenceTransformer, whether it is a local folder)."""
        if self.model == "default":
            return str(default_embedder_path()), True
        path = local_path(self.model)
        return (str(path), True) if path is not None else (self.model, False)

    def _load(self) -> Any:
        with self._lock:
            if self._st is not None:
                return self._st
            set_offline_env()
            use_passive_openmp()
            source, is_local = self._source()
            from sentence_transformers import SentenceTransformer

            try:
                st = SentenceTransformer(source, device=self.device, local_files_only=True)
            except OSError as exc:
                if is_local:
                    raise ModelLoadError(f"cannot load embedder from {source}: {exc}") from exc
                raise ModelLoadError(offline_hint(source)) from exc
            except Exception as exc:
                raise ModelLoadError(f"cannot load embedder {source!r}: {exc}") from exc
            st.eval()
            if self.precision == "bfloat16":
                _encoder_to_bfloat16(st)
            dim = st.get_embedding_dimension()
            if dim is None:
                raise ModelLoadError(f"embedder {source!r} does not report its dimension")
            self.dimension = int(dim)
            self.max_tokens = int(st.max_seq_length or st.tokenizer.model_max_length)
            self._st = st
            return st

    def load(self) -> None:
        """Load the model now (it otherwise loads on first use)."""
        self._load()

    @property
    def precision(self) -> str:
        """The precision embeddings are computed in: 'float32' or 'bfloat16' ('auto' resolved)."""
        if self._precision is None:
            self._precision = resolve_precision(self.requested_precision, self.device)
        return self._precision

    @contextlib.contextmanager
    def numeric_context(self) -> Iterator[None]:
        """How a stock float32 SentenceTransformer computes in this precision (autocast to
        bfloat16, or nothing). This embedder holds bfloat16 weights instead and needs none;
        benchmarks run the stock model in it to compare like with like."""
        if self.precision != "bfloat16":
            yield
            return
        import torch

        device_type = "cuda" if self.device.startswith("cuda") else self.device
        with torch.autocast(device_type, dtype=torch.bfloat16):
            yield

    def embed_documents_array(self, texts: Sequence[str]) -> npt.NDArray[np.float32]:
        """Embeddings of passages as an (n, dimension) float32 array, in batches of batch_size."""
        import numpy as np

        st = self._load()
        if not texts:
            return np.zeros((0, self.dimension), dtype=np.float32)
        with self._lock:
            out = st.encode_document(
                list(texts),
                batch_size=self.batch_size,
                normalize_embeddings=True,
                convert_to_numpy=True,
                show_progress_bar=False,
            )
        return np.asarray(out, dtype=np.float32)

    def embed_documents(self, texts: Sequence[str]) -> list[list[float]]:
        """Embeddings of passages (see embed_documents_array, which avoids the list conversion)."""
        vectors: list[list[float]] = self.embed_documents_array(texts).tolist()
        return vectors

    def embed_query(self, text: str) -> list[float]:
        """Embedding of a search query (with the model's query prompt, if it defines one)."""
        import numpy as np

        st = self._load()
        with self._lock:
            out = st.encode_query(
                [text], normalize_embeddings=True, convert_to_numpy=True, show_progress_bar=False
            )
        vector: list[float] = np.asarray(out[0], dtype=np.float32).tolist()
        return vector

    def count_tokens(self, texts: Sequence[str]) -> list[int]:
        """Tokens per text as the model sees them, without truncation and special tokens."""
        if not texts:
            return []
        st = self._load()
        with self._lock:
            backend = getattr(st.tokenizer, "backend_tokenizer", None)
            if backend is not None and hasattr(backend, "encode_batch_fast"):
                # the Rust tokenizer without offsets: ~25% faster than the wrapper's call. Its
                # truncation and padding are whatever the last encode left: switched off here.
                backend.no_truncation()
                backend.no_padding()
                fast = backend.encode_batch_fast(list(texts), add_special_tokens=False)
                return [len(e.ids) for e in fast]
            encoded = st.tokenizer(list(texts), **_COUNT_ONLY)
        return [len(ids) for ids in encoded["input_ids"]]

    def fingerprint(self) -> str:
        """sha256 of the model folder's files (weights, configuration, tokenizer); for a HF id,
        of its snapshot in the local cache. Does not load the model."""
        path = self.path
        if path is None:
            from huggingface_hub import snapshot_download

            try:
                path = Path(snapshot_download(self.model, local_files_only=True))
            except Exception as exc:
                raise ModelLoadError(offline_hint(self.model)) from exc
        return folder_fingerprint(path)

    def identity(self) -> EmbedderIdentity:
        """Name, fingerprint, precision and dimension (loads the model for the dimension)."""
        path = self.path
        local = self.model != "default" and path is not None
        return EmbedderIdentity(
            name=self.name,
            source=str(path) if local else self.model,  # a folder as an absolute path
            fingerprint=self.fingerprint(),
            precision=self.precision,
            dimension=int(self.dimension),
        )

    @property
    def path(self) -> Path | None:
        """The local folder the model is (or will be) loaded from, None for a HF id."""
        source, is_local = self._source()
        return Path(source) if is_local else None

    def __repr__(self) -> str:
        return (
            f"SentenceTransformerEmbedder({self.model!r}, device={self.device!r}, "
            f"precision={self.requested_precision!r})"
        )
