"""The real packaged models: all-MiniLM-L6-v2 embeddings and SmolLM2-135M-Instruct generation
(converted once from the GGUF file into the model cache)."""

from __future__ import annotations

import threading
import time
from typing import Any

import numpy as np
import pytest

from rag_core.embedders.sentence_transformers import SentenceTransformerEmbedder, native_bfloat16
from rag_core.errors import ConfigError, ModelLoadError
from rag_core.generators.transformers import THREAD_PREFIX, TransformersGenerator
from rag_core.models import COMPLETE_MARKER
from rag_core.protocols import Embedder, Generator
from rag_core.types import Message

pytestmark = [pytest.mark.integration, pytest.mark.timeout(300)]

FRANCE = [Message("user", "What is the capital of France? Answer in one word.")]


def test_embedder_shape_and_protocol(real_embedder: Any) -> None:
    assert isinstance(real_embedder, Embedder)
    assert real_embedder.dimension == 384
    assert real_embedder.max_tokens == 256
    vectors = real_embedder.embed_documents(["one passage", "another passage"])
    assert len(vectors) == 2 and all(len(v) == 384 for v in vectors)
    assert isinstance(vectors[0][0], float)
    array = real_embedder.embed_documents_array(["one passage"])
    assert array.dtype == np.float32 and array.shape == (1, 384)
    assert np.isclose(np.linalg.norm(array[0]), 1.0, atol=1e-4)
    assert real_embedder.embed_documents([]) == []


def test_similar_sentences_score_higher(real_embedder: Any) -> None:
    query = np.array(real_embedder.embed_query("How do I reset my password?"))
    docs = np.array(
        real_embedder.embed_documents(
            [
                "To change a forgotten password, click 'Forgot password' on the login page.",
                "The Eiffel Tower is 330 metres tall and stands in Paris.",
                "Bananas are rich in potassium.",
            ]
        )
    )
    scores = docs @ query
    assert scores[0] > 0.5
    assert scores[0] > scores[1] + 0.3 and scores[0] > scores[2] + 0.3


def test_embedder_count_tokens(real_embedder: Any) -> None:
    long_text = "retrieval " * 1000
    real_embedder.embed_documents([long_text])  # leaves the tokenizer set to truncate
    counts = real_embedder.count_tokens(["Hello world", "", long_text])
    assert counts[0] == 2  # no [CLS]/[SEP]
    assert counts[1] == 0
    assert counts[2] >= 1000  # not truncated to max_tokens
    # counting without truncation must not leak into encoding: the encoder's window still holds
    (vec,) = real_embedder.embed_documents_array([long_text])
    truncated = " ".join(long_text.split()[: real_embedder.max_tokens - 2])
    assert float(vec @ real_embedder.embed_documents_array([truncated])[0]) > 0.9999
    st = real_embedder._load()
    wrapper = st.tokenizer(["Hello world, counted twice"], add_special_tokens=False)["input_ids"]
    assert real_embedder.count_tokens(["Hello world, counted twice"]) == [len(wrapper[0])]
    started = time.perf_counter()
    real_embedder.count_tokens(["A sentence of moderate length for counting."] * 2000)
    assert time.perf_counter() - started < 5


def test_bfloat16_embeddings_match_float32(real_embedder: Any) -> None:
    texts = [
        "To change a forgotten password, click 'Forgot password' on the login page.",
        "The Quarnet bearings must be greased every 900 operating hours.",
        "def parse(path: str) -> dict: return json.loads(Path(path).read_text())",
        "Bananas",
    ]
    fp32 = SentenceTransformerEmbedder("default", precision="float32")
    bf16 = SentenceTransformerEmbedder("default", precision="bfloat16")
    assert (fp32.precision, bf16.precision) == ("float32", "bfloat16")
    a, b = fp32.embed_documents_array(texts), bf16.embed_documents_array(texts)
    assert b.dtype == np.float32 and b.shape == a.shape
    assert np.allclose(np.linalg.norm(b, axis=1), 1.0, atol=1e-4)
    assert float((a * b).sum(axis=1).min()) > 0.999
    assert not np.array_equal(a, b)  # the bfloat16 path really ran
    q32, q16 = np.array(fp32.embed_query(texts[0])), np.array(bf16.embed_query(texts[0]))
    assert float(q32 @ q16) > 0.999
    # the shared default embedder uses bfloat16 exactly where the CPU computes it natively
    assert real_embedder.precision == ("bfloat16" if native_bfloat16() else "float32")
    with pytest.raises(ConfigError, match="embed precision must be one of auto, float32"):
        SentenceTransformerEmbedder("default", precision="fp8")


def test_embedder_load_errors(tmp_path: Any) -> None:
    with pytest.raises(ModelLoadError, match="does not exist"):
        SentenceTransformerEmbedder(str(tmp_path / "missing")).embed_query("x")
    with pytest.raises(ModelLoadError, match="cannot download"):
        SentenceTransformerEmbedder("nobody-xyz/not-a-model").embed_query("x")


def test_gguf_was_converted_into_the_cache(real_generator: Any) -> None:
    assert isinstance(real_generator, Generator)
    entry = real_generator.cache_path()
    assert entry is not None and entry == real_generator.model_path
    assert entry.name.startswith("SmolLM2-135M-Instruct.Q4_1-")
    names = {p.name for p in entry.iterdir()}
    assert {"model.safetensors", "config.json", "tokenizer.json", COMPLETE_MARKER} <= names
    assert not list(entry.parent.glob(f".{entry.name}.tmp-*"))  # no half-written folder left


def test_second_generator_loads_from_cache_without_converting(real_generator: Any) -> None:
    entry = real_generator.cache_path()
    mtime = (entry / COMPLETE_MARKER).stat().st_mtime
    again = TransformersGenerator("default", cache_dir=real_generator.cache_dir)
    started = time.perf_counter()
    again.load()
    seconds = time.perf_counter() - started
    assert again.converted is False
    assert again.model_path == entry
    assert (entry / COMPLETE_MARKER).stat().st_mtime == mtime
    assert seconds < 30, f"loading from the cache took {seconds:.1f} s"  # ~2-4 s measured
    assert again.count_tokens("The capital of France") == real_generator.count_tokens(
        "The capital of France"
    )


def test_streams_the_right_answer(real_generator: Any) -> None:
    pieces = list(real_generator.stream(FRANCE, max_new_tokens=16))
    text = "".join(pieces)
    assert len(pieces) >= 2
    assert "Paris" in text
    assert real_generator.generate(FRANCE, max_new_tokens=16) == text  # greedy is deterministic


def test_prompt_uses_the_chat_template(real_generator: Any) -> None:
    prompt = real_generator.render_prompt([Message("system", "Be brief."), *FRANCE])
    assert prompt.startswith("<|im_start|>system\nBe brief.<|im_end|>")
    assert prompt.endswith("<|im_start|>assistant\n")
    assert real_generator.count_tokens("Paris") >= 1


def test_stop_ends_generation_on_the_real_model(real_generator: Any) -> None:
    stop = threading.Event()
    story = [Message("user", "Write a long story about a dragon who learns to bake bread.")]
    pieces = []
    stopped_at = None
    for piece in real_generator.stream(story, max_new_tokens=400, stop=stop):
        pieces.append(piece)
        if len(pieces) == 3:
            stop.set()
            stopped_at = time.monotonic()
    assert stopped_at is not None
    assert time.monotonic() - stopped_at < 5
    assert len(pieces) <= 6
    assert not [t for t in threading.enumerate() if t.name.startswith(THREAD_PREFIX)]
