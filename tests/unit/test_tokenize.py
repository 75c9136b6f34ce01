"""The BM25 tokenizer: words, stop words, stemming, and code identifiers kept whole and split."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import pytest

from rag_core.stores.tokenize import MAX_TOKEN_CHARS, STOP_WORDS, tokenize


def test_lowercases_and_splits_on_non_alphanumerics() -> None:
    assert tokenize("Hello, WORLD! (Chroma)-store") == ["hello", "world", "chroma", "store"]


def test_removes_stop_words() -> None:
    assert tokenize("What is the capital of the country?") == ["capit", "countri"]
    assert tokenize("the and of") == []
    assert {"the", "what", "is", "not"} <= STOP_WORDS


def test_stems_with_snowball_english() -> None:
    assert tokenize("running runs ran") == ["run", "run", "ran"]
    assert tokenize("connections connected connecting") == ["connect"] * 3


def test_contractions_split_and_their_parts_are_stop_words() -> None:
    assert tokenize("isn't it obvious? don't panic") == ["obvious", "panic"]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("os.path.join", ["os.path.join", "os", "path", "join"]),
        ("max_batch_size", ["max_batch_size", "max", "batch", "size"]),
        ("getUserName", ["getusername", "get", "user", "name"]),
        ("HTTPServerError", ["httpservererror", "http", "server", "error"]),
        ("np.linalg.norm()", ["np.linalg.norm", "np", "linalg", "norm"]),
        ("__init__", ["init"]),
        ("python3", ["python3", "python", "3"]),
    ],
)
def test_identifiers_are_kept_whole_and_split(text: str, expected: list[str]) -> None:
    assert tokenize(text) == expected


def test_an_acronyms_plural_is_the_acronym() -> None:
    """An acronym's plural is the acronym, not camelCase parts ("ROMs" is not "RO" + "Ms"): a
    question about CD-ROMs or PDFs matches a passage about a CD-ROM or a PDF."""
    assert tokenize("CD-ROMs") == tokenize("CD-ROM") == ["cd", "rom"]
    assert tokenize("merge PDFs") == tokenize("merge a PDF") == ["merg", "pdf"]
    assert tokenize("IDs and CPUs") == ["id", "cpu"]
    assert tokenize("getURLs") == ["geturls", "get", "url"]
    assert tokenize("HTTPServers") == ["httpservers", "http", "server"]  # not an acronym's s
    assert tokenize("HTTPS") == ["https"]


def test_identifier_parts_are_stemmed_and_stop_filtered() -> None:
    # "is" is a stop word, "loading" stems to "load"; the whole identifier is kept verbatim.
    assert tokenize("is_loading_models") == ["is_loading_models", "load", "model"]


def test_identifier_in_a_sentence() -> None:
    assert tokenize("Call os.path.join() to build paths.") == [
        "call",
        "os.path.join",
        "os",
        "path",
        "join",
        "build",
        "path",
    ]


def test_versions_and_domains() -> None:
    assert tokenize("chromadb 1.5.9") == ["chromadb", "1.5.9", "1", "5", "9"]
    assert tokenize("docs.trychroma.com")[0] == "docs.trychroma.com"


def test_unicode_words() -> None:
    assert tokenize("Café naïve 日本語") == ["café", "naïv", "日本語"]


def test_empty_and_punctuation_only() -> None:
    assert tokenize("") == []
    assert tokenize(" ,.;:!?-- ... ___ ") == []


def test_overlong_tokens_are_dropped() -> None:
    blob = "a" * (MAX_TOKEN_CHARS + 1)
    assert tokenize(f"keep {blob} this") == ["keep"]


def test_query_and_document_tokenize_alike() -> None:
    doc = set(tokenize("To join a directory and a file name into a path, use os.path.join."))
    assert set(tokenize("os.path.join")) <= doc


def test_thread_safe_and_deterministic() -> None:
    texts = [f"Running parsers{i} getUserName os.path.join connections" for i in range(200)]
    expected = [tokenize(t) for t in texts]
    with ThreadPoolExecutor(max_workers=8) as pool:
        assert list(pool.map(tokenize, texts)) == expected
