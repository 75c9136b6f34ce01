"""The peer's separate virtual environment (bench/.peer-venv), installed from the package registry.

torch 2.13.0 (the CPU build) goes in first, then LlamaIndex with a constraint that keeps it, so
the peer runs the same torch as ragchat.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

VENV = Path(__file__).resolve().parent / ".peer-venv"
TORCH = "torch==2.13.0"
PACKAGES = (
    "llama-index-core",
    "llama-index-vector-stores-chroma",
    "llama-index-embeddings-huggingface",
)
STAMP = VENV / ".ragchat-bench-installed"


def venv_python() -> Path:
    return VENV / "bin" / "python"


def ensure_peer_venv(log: Path | None = None) -> Path:
    """Create and fill the peer venv once (a stamp file records a finished install); its python."""
    wanted = "\n".join((TORCH, *PACKAGES))
    if STAMP.is_file() and STAMP.read_text() == wanted and venv_python().exists():
        return venv_python()
    out = log.open("ab") if log else None
    try:
        if not venv_python().exists():
            subprocess.run([sys.executable, "-m", "venv", str(VENV)], check=True)
        pip = [str(venv_python()), "-m", "pip", "install", "--quiet"]
        constraint = VENV / "constraints.txt"
        constraint.write_text(TORCH + "\n")
        subprocess.run([*pip, "--upgrade", "pip"], check=True, stdout=out, stderr=out)
        subprocess.run([*pip, TORCH], check=True, stdout=out, stderr=out)
        subprocess.run([*pip, "-c", str(constraint), *PACKAGES], check=True, stdout=out, stderr=out)
    finally:
        if out:
            out.close()
    STAMP.write_text(wanted)
    return venv_python()


if __name__ == "__main__":
    print(ensure_peer_venv())
