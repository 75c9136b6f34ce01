"""TransformersGenerator's streaming thread and the model cache, on tiny random models (no real
weights): pieces arrive, stop ends the worker, errors reach the consumer, conversion is atomic."""

from __future__ import annotations

import json
import multiprocessing
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from rag_core import models
from rag_core.errors import ConfigError, GenerationError, ModelLoadError
from rag_core.generators import transformers as tg
from rag_core.generators.transformers import TransformersGenerator, flatten_messages
from rag_core.types import Message

WORDS = [
    *("the", "a", "cat", "dog", "sat", "ran", "on", "mat", "park", "red", "blue", "big"),
    *("small", "fast", "slow", "and", "then", "it", "was"),
]
SPECIALS = ["<pad>", "<unk>", "<s>", "</s>", "<|user|>", "<|assistant|>", "<|system|>"]
TEMPLATE = (
    "{% for m in messages %}<|{{ m['role'] }}|> {{ m['content'] }} </s> {% endfor %}"
    "{% if add_generation_prompt %}<|assistant|> {% endif %}"
)
QUESTION = [Message("system", "be brief"), Message("user", "the cat sat on the mat")]

pytestmark = pytest.mark.timeout(120)


def _tokenizer(chat_template: str | None) -> Any:
    from tokenizers import Tokenizer, pre_tokenizers
    from tokenizers import models as tk_models
    from transformers import PreTrainedTokenizerFast

    vocab = {tok: i for i, tok in enumerate(SPECIALS + WORDS)}
    backend = Tokenizer(tk_models.WordLevel(vocab=vocab, unk_token="<unk>"))
    backend.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    backend.add_special_tokens(SPECIALS)
    tok = PreTrainedTokenizerFast(
        tokenizer_object=backend,
        pad_token="<pad>",
        unk_token="<unk>",
        bos_token="<s>",
        eos_token="</s>",
    )
    if chat_template:
        tok.chat_template = chat_template
    return tok


def _never_eos(model: Any) -> None:
    """Zero the output layer's EOS row: greedy decoding of random weights then never ends early."""
    import torch

    with torch.no_grad():
        model.get_output_embeddings().weight[SPECIALS.index("</s>")] = 0.0


def _save_llama(folder: Path, chat_template: str | None) -> Path:
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(0)
    config = LlamaConfig(
        vocab_size=len(SPECIALS) + len(WORDS),
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=2,
        num_key_value_heads=2,
        max_position_embeddings=4096,
        tie_word_embeddings=False,
        pad_token_id=0,
        bos_token_id=2,
        eos_token_id=3,
    )
    model = LlamaForCausalLM(config)
    _never_eos(model)
    model.save_pretrained(folder)
    _tokenizer(chat_template).save_pretrained(folder)
    return folder


def _save_t5(folder: Path) -> Path:
    import torch
    from transformers import T5Config, T5ForConditionalGeneration

    torch.manual_seed(0)
    config = T5Config(
        vocab_size=len(SPECIALS) + len(WORDS),
        d_model=32,
        d_kv=8,
        d_ff=64,
        num_layers=2,
        num_decoder_layers=2,
        num_heads=2,
        tie_word_embeddings=False,
        pad_token_id=0,
        eos_token_id=3,
        decoder_start_token_id=0,
    )
    model = T5ForConditionalGeneration(config)
    _never_eos(model)
    model.save_pretrained(folder)
    _tokenizer(None).save_pretrained(folder)
    return folder


@pytest.fixture(scope="module")
def folders(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("tiny-models")
    return {
        "llama": _save_llama(root / "llama", TEMPLATE),
        "plain": _save_llama(root / "plain", None),
        "t5": _save_t5(root / "t5"),
    }


@pytest.fixture(scope="module")
def gen(
    folders: dict[str, Path], tmp_path_factory: pytest.TempPathFactory
) -> TransformersGenerator:
    g = TransformersGenerator(str(folders["llama"]), cache_dir=tmp_path_factory.mktemp("cache"))
    g.load()
    return g


def _workers_alive() -> list[threading.Thread]:
    return [
        t for t in threading.enumerate() if t.name.startswith(tg.THREAD_PREFIX) and t.is_alive()
    ]


def _wait_no_workers(seconds: float = 5.0) -> bool:
    deadline = time.monotonic() + seconds
    while _workers_alive() and time.monotonic() < deadline:
        time.sleep(0.01)
    return not _workers_alive()


# -- streaming ---------------------------------------------------------------------------------


def test_stream_yields_several_pieces(gen: TransformersGenerator) -> None:
    pieces = list(gen.stream(QUESTION, max_new_tokens=12))
    assert len(pieces) >= 2
    assert all(isinstance(p, str) and p for p in pieces)
    assert _wait_no_workers()


def test_greedy_is_deterministic_and_generate_joins_the_stream(gen: TransformersGenerator) -> None:
    text = gen.generate(QUESTION, max_new_tokens=10)
    assert text == "".join(gen.stream(QUESTION, max_new_tokens=10))
    assert text.strip()


def test_sampling_runs(gen: TransformersGenerator) -> None:
    assert gen.generate(QUESTION, max_new_tokens=8, temperature=0.8).strip()


def test_chat_template_is_used(gen: TransformersGenerator) -> None:
    prompt = gen.render_prompt(QUESTION)
    assert prompt == (
        "<|system|> be brief </s> <|user|> the cat sat on the mat </s> <|assistant|> "
    )


def test_plain_prompt_without_template(folders: dict[str, Path], tmp_path: Path) -> None:
    g = TransformersGenerator(str(folders["plain"]), cache_dir=tmp_path)
    assert g.render_prompt(QUESTION).endswith("user: the cat sat on the mat\nassistant:")
    assert len(list(g.stream(QUESTION, max_new_tokens=6))) >= 2


def test_count_tokens(gen: TransformersGenerator) -> None:
    assert gen.count_tokens("the cat sat") == 3
    assert gen.count_tokens("") == 0


def test_stop_event_ends_the_worker_quickly(gen: TransformersGenerator) -> None:
    stop = threading.Event()
    pieces = []
    started = time.monotonic()
    stopped_at = None
    for piece in gen.stream(QUESTION, max_new_tokens=3000, stop=stop):
        pieces.append(piece)
        if len(pieces) == 3:
            stop.set()
            stopped_at = time.monotonic()
    assert stopped_at is not None
    assert time.monotonic() - stopped_at < 2.0
    assert len(pieces) < 50
    assert _wait_no_workers(1.0)
    assert time.monotonic() - started < 30


def test_stop_set_before_start_yields_nothing(gen: TransformersGenerator) -> None:
    stop = threading.Event()
    stop.set()
    assert list(gen.stream(QUESTION, max_new_tokens=50, stop=stop)) == []


def test_closing_the_iterator_joins_the_worker(gen: TransformersGenerator) -> None:
    it = gen.stream(QUESTION, max_new_tokens=3000)
    assert next(it)
    assert _workers_alive()
    it.close()  # GeneratorExit inside the stream: it sets its stop flag and joins
    assert not _workers_alive()


def test_break_out_of_for_loop_joins_the_worker(gen: TransformersGenerator) -> None:
    def first_two() -> list[str]:
        out = []
        for piece in gen.stream(QUESTION, max_new_tokens=3000):
            out.append(piece)
            if len(out) == 2:
                break
        return out

    assert len(first_two()) == 2
    assert _wait_no_workers(5.0)


def test_error_in_generate_reaches_the_consumer(
    gen: TransformersGenerator, monkeypatch: pytest.MonkeyPatch
) -> None:
    def boom(**kwargs: Any) -> None:
        raise RuntimeError("boom")

    monkeypatch.setattr(gen._model, "generate", boom)
    started = time.monotonic()
    with pytest.raises(GenerationError, match="boom") as info:
        list(gen.stream(QUESTION, max_new_tokens=20))
    assert isinstance(info.value.__cause__, RuntimeError)
    assert time.monotonic() - started < 5
    assert _wait_no_workers()


def test_error_midway_delivers_text_then_raises(
    gen: TransformersGenerator, monkeypatch: pytest.MonkeyPatch
) -> None:
    import torch

    original = gen._model.generate

    class RaiseAfter:
        calls = 0

        def __call__(self, input_ids: Any, scores: Any, **kwargs: Any) -> Any:
            self.calls += 1
            if self.calls > 4:
                raise ValueError("broken step")
            return torch.zeros(input_ids.shape[0], dtype=torch.bool)

    def flaky(**kwargs: Any) -> Any:
        kwargs["stopping_criteria"].append(RaiseAfter())
        return original(**kwargs)

    monkeypatch.setattr(gen._model, "generate", flaky)
    pieces: list[str] = []
    with pytest.raises(GenerationError) as info:
        for piece in gen.stream(QUESTION, max_new_tokens=100):
            pieces.append(piece)
    assert pieces  # what was generated before the failure still arrived
    assert isinstance(info.value.__cause__, ValueError)
    assert _wait_no_workers()


def test_stalled_worker_does_not_hang_the_consumer(
    folders: dict[str, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    g = TransformersGenerator(str(folders["llama"]), cache_dir=tmp_path, stall_timeout=0.3)
    g.load()
    monkeypatch.setattr(g._model, "generate", lambda **kwargs: time.sleep(1.0))
    started = time.monotonic()
    with pytest.raises(GenerationError, match="produced nothing"):
        list(g.stream(QUESTION, max_new_tokens=5))
    assert time.monotonic() - started < 3
    assert _wait_no_workers()


def test_concurrent_streams_are_serialized(
    gen: TransformersGenerator, monkeypatch: pytest.MonkeyPatch
) -> None:
    original = gen._model.generate
    active = 0
    most = 0
    guard = threading.Lock()

    def counting(**kwargs: Any) -> Any:
        nonlocal active, most
        with guard:
            active += 1
            most = max(most, active)
        try:
            time.sleep(0.05)
            return original(**kwargs)
        finally:
            with guard:
                active -= 1

    monkeypatch.setattr(gen._model, "generate", counting)
    results: list[str] = []

    def run() -> None:
        results.append(gen.generate(QUESTION, max_new_tokens=8))

    threads = [threading.Thread(target=run) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert len(results) == 3 and len(set(results)) == 1  # greedy: the same text each time
    assert most == 1


def test_seq2seq_model(folders: dict[str, Path], tmp_path: Path) -> None:
    g = TransformersGenerator(str(folders["t5"]), cache_dir=tmp_path)
    g.load()
    assert g.is_encoder_decoder
    assert g.render_prompt(QUESTION) == "be brief\n\nthe cat sat on the mat"
    pieces = list(g.stream(QUESTION, max_new_tokens=10))
    assert len(pieces) >= 2
    assert _wait_no_workers()


def test_flatten_keeps_turns() -> None:
    msgs = [Message("user", "hi"), Message("assistant", "hello"), Message("user", "and?")]
    assert flatten_messages(msgs) == "User: hi\n\nAssistant: hello\n\nUser: and?"


# -- validation and loading errors -------------------------------------------------------------


@pytest.mark.parametrize(
    "kwargs",
    [{"quantize": "int4"}, {"threads": 0}, {"gguf_file": "model.bin"}, {"stall_timeout": 0}],
)
def test_bad_settings_are_config_errors(tmp_path: Path, kwargs: dict[str, Any]) -> None:
    with pytest.raises(ConfigError, match=repr(next(iter(kwargs.values())))):
        TransformersGenerator("default", cache_dir=tmp_path, **kwargs)


def test_bad_stream_arguments(gen: TransformersGenerator) -> None:
    with pytest.raises(ConfigError):
        gen.stream(QUESTION, max_new_tokens=0)
    with pytest.raises(ConfigError):
        gen.stream(QUESTION, max_new_tokens=5, temperature=-1)
    with pytest.raises(ConfigError):
        gen.stream([], max_new_tokens=5)


def test_missing_folder_and_uncached_id_are_model_load_errors(tmp_path: Path) -> None:
    with pytest.raises(ModelLoadError, match="does not exist"):
        TransformersGenerator(str(tmp_path / "nope"), cache_dir=tmp_path).load()
    with pytest.raises(ModelLoadError, match="cannot download"):
        TransformersGenerator("nobody-xyz/not-a-model", cache_dir=tmp_path).load()


def test_int8_quantization(folders: dict[str, Path], tmp_path: Path) -> None:
    import warnings

    g = TransformersGenerator(str(folders["llama"]), cache_dir=tmp_path, quantize="int8")
    with warnings.catch_warnings():
        warnings.simplefilter("error", DeprecationWarning)
        g.load()
    assert "DynamicQuantizedLinear" in repr(g._model)
    assert len(list(g.stream(QUESTION, max_new_tokens=6))) >= 2


# -- GGUF conversion into the cache ------------------------------------------------------------


def test_gguf_source_converts_once_into_the_cache(
    folders: dict[str, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import shutil

    calls: list[Path] = []

    def fake_convert(gguf: Path, out: Path) -> None:  # stands in for the slow dequantization
        calls.append(gguf)
        for item in folders["llama"].iterdir():
            shutil.copy(item, out / item.name)

    monkeypatch.setattr(tg, "convert_gguf", fake_convert)
    src = tmp_path / "src"
    src.mkdir()
    (src / "Tiny-Model.Q4.gguf").write_bytes(b"GGUF" + b"\0" * 60)
    cache = tmp_path / "cache"

    first = TransformersGenerator(str(src), cache_dir=cache, gguf_file="Tiny-Model.Q4.gguf")
    first.load()
    assert first.converted and len(calls) == 1
    entry = first.cache_path()
    assert entry is not None and entry.parent == cache
    assert entry.name.startswith("Tiny-Model.Q4-")
    assert first.model_path == entry
    assert {"config.json", "model.safetensors", "tokenizer.json", models.COMPLETE_MARKER} <= {
        p.name for p in entry.iterdir()
    }
    assert json.loads((entry / models.COMPLETE_MARKER).read_text())["source"].endswith(".gguf")
    assert first.generate(QUESTION, max_new_tokens=4)

    second = TransformersGenerator(str(src / "Tiny-Model.Q4.gguf"), cache_dir=cache)
    second.load()
    assert not second.converted and len(calls) == 1
    assert second.model_path == entry
    assert [p.name for p in cache.iterdir() if not p.name.endswith(".lock")] == [entry.name]


def test_missing_gguf_file(tmp_path: Path) -> None:
    with pytest.raises(ModelLoadError, match="not found"):
        TransformersGenerator(str(tmp_path), cache_dir=tmp_path, gguf_file="x.gguf").load()


def test_cache_key_follows_path_and_size(tmp_path: Path) -> None:
    f = tmp_path / "m.gguf"
    f.write_bytes(b"1234")
    key = models.file_cache_key(f)
    assert key == models.file_cache_key(f) and len(key) == 12
    f.write_bytes(b"12345")
    assert models.file_cache_key(f) != key
    assert models.safe_name("org/My Model:v1") == "org_My_Model_v1"


# -- ensure_cached: atomic and process-safe ----------------------------------------------------


def _write_files(out: Path) -> None:
    (out / "weights.bin").write_bytes(b"x" * 1000)
    (out / "config.json").write_text("{}")


def test_ensure_cached_builds_once(tmp_path: Path) -> None:
    target = tmp_path / "entry"
    calls: list[Path] = []

    def build(out: Path) -> None:
        calls.append(out)
        assert out != target and out.parent == tmp_path and out.name.startswith(".entry.tmp-")
        _write_files(out)

    assert models.ensure_cached(target, build, info={"source": "s"}) is True
    assert models.ensure_cached(target, build) is False
    assert len(calls) == 1
    assert models.is_complete(target)
    assert (target / "weights.bin").stat().st_size == 1000
    assert json.loads((target / models.COMPLETE_MARKER).read_text())["source"] == "s"


def test_failed_build_leaves_nothing_behind(tmp_path: Path) -> None:
    target = tmp_path / "entry"

    def half_then_fail(out: Path) -> None:
        (out / "weights.bin").write_bytes(b"partial")
        raise RuntimeError("disk full")

    with pytest.raises(RuntimeError, match="disk full"):
        models.ensure_cached(target, half_then_fail)
    assert not target.exists()
    assert [p.name for p in tmp_path.iterdir()] == [".entry.lock"]
    assert models.ensure_cached(target, _write_files) is True


def test_leftovers_of_a_crash_are_not_used(tmp_path: Path) -> None:
    target = tmp_path / "entry"
    stale = tmp_path / ".entry.tmp-999-deadbeef"
    stale.mkdir()
    (stale / "weights.bin").write_bytes(b"half")
    target.mkdir()  # a folder without the completion marker: never finished
    (target / "weights.bin").write_bytes(b"half")
    assert not models.is_complete(target)
    assert models.ensure_cached(target, _write_files) is True
    assert not stale.exists()
    assert (target / "weights.bin").stat().st_size == 1000


def test_threads_racing_build_once(tmp_path: Path) -> None:
    target = tmp_path / "entry"
    calls: list[int] = []
    results: list[bool] = []

    def slow_build(out: Path) -> None:
        calls.append(1)
        time.sleep(0.3)
        _write_files(out)

    def run() -> None:
        results.append(models.ensure_cached(target, slow_build))

    threads = [threading.Thread(target=run) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(10)
    assert len(calls) == 1
    assert sorted(results) == [False, False, False, True]


def _build_in_process(target: str, log: str) -> bool:
    def build(out: Path) -> None:
        with open(log, "a") as fh:
            fh.write("built\n")
        time.sleep(0.5)
        _write_files(out)

    return models.ensure_cached(Path(target), build)


def test_processes_racing_build_once(tmp_path: Path) -> None:
    target, log = tmp_path / "entry", tmp_path / "log.txt"
    ctx = multiprocessing.get_context("spawn")
    with ctx.Pool(2) as pool:
        results = pool.starmap(_build_in_process, [(str(target), str(log))] * 2)
    assert sorted(results) == [False, True]
    assert log.read_text() == "built\n"
    assert models.is_complete(target)
