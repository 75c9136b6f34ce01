"""build_engine(settings): the only place that chooses backends."""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING

from rag_core.config import Settings
from rag_core.db.indexes import LEGACY_COLLECTION, IndexRegistry
from rag_core.db.log import ConversationLog
from rag_core.db.registry import DocumentRegistry
from rag_core.embedders.identity import EmbedderIdentity, embedder_identity
from rag_core.engine import Engine, IndexWatch
from rag_core.errors import ConfigError, IndexMismatchError, ModelLoadError
from rag_core.ingest.pipeline import IngestPipeline
from rag_core.protocols import Embedder, Generator, KeywordIndex, VectorStore
from rag_core.retrieval import FusionParams, Retriever
from rag_core.types import IndexRecord

if TYPE_CHECKING:
    from rag_core.db.database import Database
    from rag_core.embedders.sentence_transformers import SentenceTransformerEmbedder
    from rag_core.reindex import Reindexer
    from rag_core.stores.chroma import ChromaStore
    from rag_core.stores.keyword import BM25Index

log = logging.getLogger(__name__)


def offline_environment() -> None:
    """Nothing may reach a model hub or send telemetry: set the switches the libraries read."""
    from rag_core.models import set_offline_env

    set_offline_env()
    for key, value in {
        "ANONYMIZED_TELEMETRY": "False",
        "GRADIO_ANALYTICS_ENABLED": "False",
        "TOKENIZERS_PARALLELISM": "false",
    }.items():
        os.environ.setdefault(key, value)


def make_embedder(settings: Settings, source: str, precision: str) -> SentenceTransformerEmbedder:
    """The embedder a RAGCHAT_EMBEDDER value names (loaded lazily)."""
    from rag_core.embedders.sentence_transformers import SentenceTransformerEmbedder

    return SentenceTransformerEmbedder(
        source, batch_size=settings.embed_batch_size, precision=precision
    )


def open_store(settings: Settings, record: IndexRecord) -> ChromaStore:
    """The Chroma collection of a recorded vector index (embedded or on a server), bound to its
    embedder: its dimension is checked and only its embeddings are reused by text hash."""
    from rag_core.stores.chroma import ChromaStore

    where = {"url": settings.chroma_url} if settings.chroma_url else {"path": settings.chroma_path}
    return ChromaStore(
        **where,
        collection=record.collection,
        dimension=record.identity.dimension,
        ef_search=settings.hnsw_ef_search,
        embedder_key=record.identity.fingerprint[:32],
    )


def mismatch_message(recorded: EmbedderIdentity, configured: EmbedderIdentity) -> str:
    """Why ragchat will not start with this embedder, and the ways out."""
    return (
        f"the knowledge base was embedded with {recorded.describe()}, but RAGCHAT_EMBEDDER is"
        f" now {configured.describe()}: their vectors cannot be compared. Run `ragchat reindex`"
        " to embed every passage again with the new embedder (a server started with"
        f" RAGCHAT_EMBEDDER={recorded.source} keeps answering from the current index meanwhile,"
        f" and switches when it is done), or set RAGCHAT_EMBEDDER={recorded.source} again."
    )


def _legacy_identity(settings: Settings, configured: EmbedderIdentity) -> EmbedderIdentity:
    """Who filled the collection every index lived in before embedders were recorded: taken
    to be the configured embedder, unless its vectors have another dimension."""
    from rag_core.stores.chroma import ChromaStore

    where = {"url": settings.chroma_url} if settings.chroma_url else {"path": settings.chroma_path}
    ef_search = settings.hnsw_ef_search
    with ChromaStore(**where, collection=LEGACY_COLLECTION, ef_search=ef_search) as legacy:
        stored, count = legacy.dimension, legacy.count()
    if count == 0 or stored in (None, configured.dimension):
        return configured
    unknown = "0" * 64
    return EmbedderIdentity("an unrecorded embedder", "unknown", unknown, "float32", int(stored))


def active_index(settings: Settings, indexes: IndexRegistry, embedder: Embedder) -> IndexRecord:
    """The recorded active vector index; the first start records one (an index from before
    the record existed is taken to be the configured embedder's if its dimension agrees)."""
    record = indexes.active()
    if record is not None:
        return record
    configured = embedder_identity(embedder)
    record = indexes.adopt(LEGACY_COLLECTION, _legacy_identity(settings, configured))
    log.info("recorded the vector index %s: %s", record.collection, record.identity.describe())
    return record


def check_embedder(record: IndexRecord, embedder: Embedder) -> None:
    """IndexMismatchError when the configured embedder did not make the index's vectors. A
    precision that differs alone (set explicitly: 'auto' is not resolved here) is logged: same
    weights, vectors at cosine >= 0.9999."""
    recorded = record.identity
    fingerprint = getattr(embedder, "fingerprint", None)
    if callable(fingerprint):  # no need to load the model when its files say enough
        if fingerprint() != recorded.fingerprint:
            raise IndexMismatchError(mismatch_message(recorded, embedder_identity(embedder)))
        # 'auto' would need torch to resolve: a start that loads no model does not import it
        requested = getattr(embedder, "requested_precision", None)
        explicit = getattr(embedder, "precision", None) if requested != "auto" else None
        precision = str(explicit or recorded.precision)
    else:
        configured = embedder_identity(embedder)
        if not configured.same_space(recorded):
            raise IndexMismatchError(mismatch_message(recorded, configured))
        precision = configured.precision
    if precision != recorded.precision:
        log.warning(
            "the index was embedded in %s, questions are embedded in %s (same model: vectors"
            " agree to cosine >= 0.9999); `ragchat reindex` rebuilds it in %s",
            recorded.precision, precision, precision,
        )  # fmt: skip


def _building_note(indexes: IndexRegistry) -> str:
    """What the mismatch error adds while a re-embedding is under way or was left unfinished."""
    status = indexes.status()
    building = status.building
    if building is None:
        return ""
    state = "stopped" if status.stalled else "under way"
    return (
        f" A re-embedding with {building.identity.name} is {state} at {building.chunks_done} of"
        f" {building.chunks_total} chunks; `ragchat reindex` resumes it, and the index switches"
        " when it is complete."
    )


@dataclass
class _Backends:
    """What every engine of one process shares, whichever vector index it serves."""

    settings: Settings
    db: Database
    indexes: IndexRegistry
    keyword: BM25Index
    generator: Generator

    def engine(self, embedder: Embedder, record: IndexRecord) -> Engine:
        engine = compose_engine(
            self.settings,
            db=self.db,
            embedder=embedder,
            store=open_store(self.settings, record),
            keyword=self.keyword,
            generator=self.generator,
            follow_registry=True,
        )
        engine.pipeline.index_id = record.id
        engine.index = IndexWatch(record, self.indexes.status, self.follow)
        return engine

    def follow(self, record: IndexRecord) -> Engine:
        """An engine over a newly active index (a reindex swapped it in): its embedder loaded
        from what the record names, checked against the record's fingerprint."""
        identity = record.identity
        settings = self.settings.model_copy(
            update={"embedder": identity.source, "embed_precision": identity.precision}
        )
        try:
            embedder = make_embedder(settings, identity.source, identity.precision)
            same = embedder.fingerprint() == identity.fingerprint
        except (ConfigError, ModelLoadError):  # not there, or not a model folder here
            same = False
        if not same:
            raise IndexMismatchError(
                f"the knowledge base was re-embedded with {identity.describe()}, which this"
                f" server cannot load as {identity.source!r}: restart it with RAGCHAT_EMBEDDER"
                " set to that model's folder"
            )
        return replace(self, settings=settings).engine(embedder, record)


def _generator(settings: Settings) -> Generator:
    if settings.generator.startswith("openai:"):
        from rag_core.generators.openai_compat import OpenAICompatGenerator

        key = settings.generator_api_key
        return OpenAICompatGenerator(
            settings.generator,
            settings.generator_model,
            api_key=key.get_secret_value() if key is not None else None,
            timeout=settings.generator_timeout,
            connect_timeout=settings.generator_connect_timeout,
        )
    from rag_core.generators.transformers import TransformersGenerator

    return TransformersGenerator(
        settings.generator,
        cache_dir=settings.models_path,
        gguf_file=settings.generator_gguf_file,
        threads=settings.threads,
    )


def build_engine(settings: Settings, *, migrate: bool = True, check_index: bool = True) -> Engine:
    """Wire the engine from settings. Models load lazily, on first use, except that the
    embedder is checked against the one recorded for the vector index: IndexMismatchError when
    they differ, unless `check_index` is False (`ragchat reindex` and `doctor` look for
    themselves)."""
    offline_environment()
    from rag_core.db.database import Database, private_folder
    from rag_core.stores.keyword import BM25Index

    private_folder(settings.home)
    db = Database(settings.db_url)
    if migrate:
        db.migrate()
    embedder = make_embedder(settings, settings.embedder, settings.embed_precision)
    indexes = IndexRegistry(db)
    record = active_index(settings, indexes, embedder)
    if check_index:
        try:
            check_embedder(record, embedder)
        except IndexMismatchError as exc:
            raise IndexMismatchError(str(exc) + _building_note(indexes)) from None
    backends = _Backends(
        settings, db, indexes, BM25Index(settings.keyword_path), _generator(settings)
    )
    return backends.engine(embedder, record)


def build_reindexer(engine: Engine) -> Reindexer:
    """A Reindexer for an engine built with check_index=False: its embedder (the configured
    one) fills a new index beside the active one."""
    from rag_core.reindex import Reindexer

    if engine.index is None:
        raise TypeError("build_reindexer needs an engine made by build_engine")
    settings = engine.settings
    return Reindexer(
        settings,
        engine.registry,
        IndexRegistry(engine.registry.db),
        engine.embedder,
        lambda record: open_store(settings, record),
        engine.pipeline.exclusive,
    )


def compose_engine(
    settings: Settings,
    *,
    db: Database,
    embedder: Embedder,
    store: VectorStore,
    keyword: KeywordIndex,
    generator: Generator,
    follow_registry: bool = False,
) -> Engine:
    """An engine over these backends, its document registry and conversation log over `db`.

    The ingestion pipeline and the retriever are built here, over the same embedder, stores and
    registry, and handed in (tests compose fakes the same way). `follow_registry`: before each
    question the keyword index (a BM25Index) catches up with what the registry says is ready,
    so replicas sharing one database and vector store agree (build_engine always does).
    """
    from rag_core.stores.keyword import BM25Index
    from rag_core.stores.keyword_sync import KeywordSync

    registry = DocumentRegistry(db)
    keyword_sync = None
    if follow_registry:
        if not isinstance(keyword, BM25Index):
            raise TypeError(f"only a BM25Index follows the registry, not {type(keyword).__name__}")
        keyword_sync = KeywordSync.following(keyword, store, registry)
    log = ConversationLog(db)
    pipeline = IngestPipeline(settings, embedder, store, keyword, registry)
    retriever = Retriever(
        embedder, store, keyword, registry.ready_chunk_counts, FusionParams.from_settings(settings)
    )
    return Engine(
        settings,
        embedder=embedder,
        store=store,
        keyword=keyword,
        generator=generator,
        registry=registry,
        log=log,
        pipeline=pipeline,
        retriever=retriever,
        keyword_sync=keyword_sync,
    )
