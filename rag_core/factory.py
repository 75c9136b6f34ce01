"""build_engine(settings): the only place that chooses backends."""

from __future__ import annotations

import os
from typing import TYPE_CHECKING

from rag_core.config import Settings
from rag_core.db.log import ConversationLog
from rag_core.db.registry import DocumentRegistry
from rag_core.engine import Engine
from rag_core.ingest.pipeline import IngestPipeline
from rag_core.protocols import Embedder, Generator, KeywordIndex, VectorStore
from rag_core.retrieval import FusionParams, Retriever

if TYPE_CHECKING:
    from rag_core.db.database import Database


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


def build_engine(settings: Settings, *, migrate: bool = True) -> Engine:
    """Wire the engine from settings. Models load lazily, on first use."""
    offline_environment()
    from rag_core.db.database import Database, private_folder
    from rag_core.embedders.sentence_transformers import SentenceTransformerEmbedder
    from rag_core.generators.transformers import TransformersGenerator
    from rag_core.stores.chroma import ChromaStore
    from rag_core.stores.keyword import BM25Index

    private_folder(settings.home)
    db = Database(settings.db_url)
    if migrate:
        db.migrate()
    embedder = SentenceTransformerEmbedder(
        settings.embedder,
        batch_size=settings.embed_batch_size,
        precision=settings.embed_precision,
    )
    if settings.chroma_url:
        store = ChromaStore(url=settings.chroma_url, ef_search=settings.hnsw_ef_search)
    else:
        store = ChromaStore(path=settings.chroma_path, ef_search=settings.hnsw_ef_search)
    keyword = BM25Index(settings.keyword_path)
    generator: Generator
    if settings.generator.startswith("openai:"):
        from rag_core.generators.openai_compat import OpenAICompatGenerator

        key = settings.generator_api_key
        generator = OpenAICompatGenerator(
            settings.generator,
            settings.generator_model,
            api_key=key.get_secret_value() if key is not None else None,
            timeout=settings.generator_timeout,
            connect_timeout=settings.generator_connect_timeout,
        )
    else:
        generator = TransformersGenerator(
            settings.generator,
            cache_dir=settings.models_path,
            gguf_file=settings.generator_gguf_file,
            threads=settings.threads,
        )
    return compose_engine(
        settings,
        db=db,
        embedder=embedder,
        store=store,
        keyword=keyword,
        generator=generator,
        follow_registry=True,
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
