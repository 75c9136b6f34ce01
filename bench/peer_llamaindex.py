"""The peer: LlamaIndex + Chroma + the same embedder. Runs inside bench/.peer-venv (not ragchat's).

Reads a folder of Markdown files with SimpleDirectoryReader, splits them with SentenceSplitter
(chunk size and overlap in the embedder's own tokens, like ragchat), embeds them with
HuggingFaceEmbedding on the given local model folder and stores them in a persistent Chroma
collection; then retrieves the top chunks for each query. Prints one JSON object: ingest seconds,
chunk count, and per query the file names in ranking order (a file ranks at its best chunk).
Uses only this environment's packages: it never imports ragchat.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--corpus", required=True, help="folder of .md files")
    parser.add_argument("--queries", required=True, help="JSON file: {query id: text}")
    parser.add_argument("--model", required=True, help="local sentence-transformers folder")
    parser.add_argument("--persist", required=True, help="empty folder for Chroma")
    parser.add_argument("--chunk-size", type=int, default=200)
    parser.add_argument("--chunk-overlap", type=int, default=16)
    parser.add_argument("--top-k", type=int, default=40, help="chunks retrieved per query")
    args = parser.parse_args()

    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    os.environ.setdefault("ANONYMIZED_TELEMETRY", "False")

    import chromadb
    from chromadb.config import Settings
    from llama_index.core import SimpleDirectoryReader, StorageContext, VectorStoreIndex
    from llama_index.core.node_parser import SentenceSplitter
    from llama_index.embeddings.huggingface import HuggingFaceEmbedding
    from llama_index.vector_stores.chroma import ChromaVectorStore
    from transformers import AutoTokenizer

    embed = HuggingFaceEmbedding(model_name=args.model, device="cpu")
    tokenizer = AutoTokenizer.from_pretrained(args.model)
    splitter = SentenceSplitter(
        chunk_size=args.chunk_size,
        chunk_overlap=args.chunk_overlap,
        tokenizer=lambda text: tokenizer.encode(text, add_special_tokens=False),
    )
    embed.get_text_embedding("warm up")  # the model is loaded before timing, as on our side

    t0 = time.perf_counter()
    client = chromadb.PersistentClient(
        path=args.persist, settings=Settings(anonymized_telemetry=False)
    )
    collection = client.get_or_create_collection("peer", metadata={"hnsw:space": "cosine"})
    store = ChromaVectorStore(chroma_collection=collection)
    documents = SimpleDirectoryReader(args.corpus, required_exts=[".md"]).load_data()
    index = VectorStoreIndex.from_documents(
        documents,
        storage_context=StorageContext.from_defaults(vector_store=store),
        embed_model=embed,
        transformations=[splitter],
    )
    ingest_s = time.perf_counter() - t0
    chunks = collection.count()

    with open(args.queries, encoding="utf-8") as fh:
        queries: dict[str, str] = json.load(fh)
    retriever = index.as_retriever(similarity_top_k=args.top_k)
    rankings: dict[str, list[str]] = {}
    latency_ms: list[float] = []
    for qid, text in queries.items():
        t1 = time.perf_counter()
        nodes = retriever.retrieve(text)
        latency_ms.append((time.perf_counter() - t1) * 1000)
        ranking: list[str] = []
        for hit in nodes:
            name = str(hit.node.metadata.get("file_name", ""))
            if name and name not in ranking:
                ranking.append(name)
        rankings[qid] = ranking
    json.dump(
        {
            "ingest_seconds": ingest_s,
            "chunks": chunks,
            "documents": len(documents),
            "rankings": rankings,
            "latency_ms": latency_ms,
            "versions": {
                "llama_index_core": _version("llama-index-core"),
                "chromadb": _version("chromadb"),
                "torch": _version("torch"),
            },
        },
        sys.stdout,
    )
    print()
    return 0


def _version(dist: str) -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version(dist)
    except PackageNotFoundError:
        return "not installed"


if __name__ == "__main__":
    raise SystemExit(main())
