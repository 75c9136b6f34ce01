"""The text layer over a loaded TransformersGenerator: prompts per passage, detokenizing, streams."""

from __future__ import annotations

from collections.abc import Callable, Generator, Iterable, Iterator, Sequence
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass
from typing import Any, overload

from rag_core.errors import ConfigError, GenerationError
from rag_core.generators.rag_decoding.mixture import PassageMixture
from rag_core.generators.rag_decoding.prior import DEFAULT_TAU, FinishReason, MessagesFor
from rag_core.generators.rag_decoding.sequence import RagSequenceDecoding, SequenceDecoding
from rag_core.generators.rag_decoding.token import RagTokenDecoding
from rag_core.generators.transformers import TransformersGenerator
from rag_core.models import configure_threads
from rag_core.prompting import SYSTEM_PROMPT, format_passage
from rag_core.types import Hit, Message


def require_token_probabilities(generator: object, strategy: str) -> TransformersGenerator:
    """The generator, if it can give token probabilities (a local transformers model).

    RAG-Token / RAG-Sequence need log p(y_t | x, z, y<t) for every passage; a chat server (e.g.
    an OpenAI-compatible one) streams text only, so the strategy cannot run on it.
    """
    if isinstance(generator, TransformersGenerator):
        return generator
    name = getattr(generator, "name", None) or type(generator).__name__
    raise ConfigError(
        f"the {strategy!r} decoding strategy needs the model's token probabilities, which only a "
        f"local transformers generator gives; generator {name!r} ({type(generator).__name__}) "
        "does not: set RAGCHAT_GENERATOR to a local model ('default', a folder or a model id) or "
        "choose another strategy"
    )


def passage_messages(question: str, passage: Hit | str, number: int) -> list[Message]:
    """The chat messages for one passage: system prompt, '[n] (document, p. 3) text', question.

    The style of rag_core.prompting.build_messages with one passage, which keeps its own number
    so the model cites it as [n]. A plain string passage is shown as '[n] text'.
    """
    if isinstance(passage, Hit):
        block = format_passage(passage, number)
    else:
        block = f"[{number}] {' '.join(passage.split())}"
    user = f"Passages:\n{block}\n\nQuestion: {question.strip()}"
    return [Message("system", SYSTEM_PROMPT), Message("user", user)]


def _is_cjk(char: str) -> bool:
    """A CJK ideograph (transformers TextStreamer._is_chinese_char): words without spaces."""
    cp = ord(char)
    return (
        0x4E00 <= cp <= 0x9FFF
        or 0x3400 <= cp <= 0x4DBF
        or 0x20000 <= cp <= 0x2A6DF
        or 0x2A700 <= cp <= 0x2B73F
        or 0x2B740 <= cp <= 0x2B81F
        or 0x2B820 <= cp <= 0x2CEAF
        or 0xF900 <= cp <= 0xFAFF
        or 0x2F800 <= cp <= 0x2FA1F
    )


class _Detokenizer:
    """Token ids -> text pieces, cut as transformers' TextStreamer cuts them.

    The ids since the last newline are decoded together and the new suffix is given up to its
    last space (at once after a newline or a CJK character), so a character split over several
    byte tokens, or a token that merges with the next, is never given half-made. ``char_ends[t]``
    is where token t's text ends in the answer.
    """

    def __init__(self, tokenizer: Any, lock: AbstractContextManager[Any] | None = None) -> None:
        self.tokenizer = tokenizer
        self.lock: AbstractContextManager[Any] = lock if lock is not None else nullcontext()
        self.ids: list[int] = []
        self.printed = 0  # chars of decode(self.ids) already given
        self.base = 0  # chars given before self.ids began
        self.pieces: list[str] = []
        self.char_ends: list[int] = []

    def _decode(self) -> str:
        with self.lock:
            return str(self.tokenizer.decode(self.ids, skip_special_tokens=True))

    def push(self, token_id: int) -> str:
        self.ids.append(token_id)
        text = self._decode()
        self.char_ends.append(self.base + len(text))
        if text.endswith("\n"):
            piece = text[self.printed :]
            self.base += len(text)
            self.ids, self.printed = [], 0
        elif text and _is_cjk(text[-1]):
            piece = text[self.printed :]
            self.printed += len(piece)
        else:
            piece = text[self.printed : text.rfind(" ") + 1]
            self.printed += len(piece)
        self.pieces.append(piece)
        return piece

    def flush(self) -> str:
        piece = self._decode()[self.printed :] if self.ids else ""
        self.base += self.printed + len(piece)
        self.ids, self.printed = [], 0
        self.pieces.append(piece)
        return piece

    @property
    def text(self) -> str:
        return "".join(self.pieces)

    def token_span(self, char_start: int, char_end: int) -> tuple[int, int]:
        """Token positions [start, end) whose text covers characters [char_start, char_end)."""
        if not 0 <= char_start <= char_end:
            raise ValueError(f"bad character span [{char_start}, {char_end})")
        ends = self.char_ends
        start = next((t for t, end in enumerate(ends) if end > char_start), len(ends))
        stop = next((t + 1 for t, end in enumerate(ends) if end >= char_end), len(ends))
        return start, max(start, stop)


class _TextStream:
    """What both streams share: an iterator of whole-word text pieces over the answer's token ids,
    the text given so far, and where a sentence's characters lie in the tokens."""

    def __init__(self, tokenizer: Any, tokenizer_lock: AbstractContextManager[Any] | None) -> None:
        self._text = _Detokenizer(tokenizer, tokenizer_lock)
        self._iterator = self._all_pieces()

    def __iter__(self) -> Iterator[str]:
        return self

    def __next__(self) -> str:
        return next(self._iterator)

    def close(self) -> None:
        self._iterator.close()

    def _pieces(self) -> Iterator[str]:
        """The answer's pieces before the detokenizer's tail (each stream decodes its own way)."""
        raise NotImplementedError

    def _all_pieces(self) -> Generator[str, None, None]:
        yield from self._pieces()
        tail = self._text.flush()
        if tail:
            yield tail

    def _push_all(self, token_ids: Iterable[int]) -> Iterator[str]:
        for token_id in token_ids:
            piece = self._text.push(token_id)
            if piece:
                yield piece

    @property
    def text(self) -> str:
        """The text given so far (all of it once the iterator is exhausted)."""
        return self._text.text

    def token_span(self, char_start: int, char_end: int) -> tuple[int, int]:
        """Token positions of the characters [char_start, char_end) of ``text`` (a sentence)."""
        return self._text.token_span(char_start, char_end)


class RagTokenStream(_TextStream):
    """RAG-Token text: iterate for the answer's new text pieces; the decoding stays readable.

    ``decoding`` is the RagTokenDecoding (steps, per-passage log-probs). An error inside the model
    is raised here as GenerationError, with the original as __cause__.
    """

    def __init__(
        self,
        decoding: RagTokenDecoding,
        tokenizer: Any,
        tokenizer_lock: AbstractContextManager[Any] | None = None,
    ) -> None:
        self.decoding = decoding
        super().__init__(tokenizer, tokenizer_lock)

    def close(self) -> None:
        super().close()
        self.decoding.close()

    def _pieces(self) -> Iterator[str]:
        try:
            yield from self._push_all(step.token_id for step in self.decoding)
        except Exception as exc:
            raise GenerationError(
                f"RAG-Token decoding failed: {type(exc).__name__}: {exc}"
            ) from exc

    @property
    def token_ids(self) -> tuple[int, ...]:
        return self.decoding.token_ids

    @property
    def finish_reason(self) -> FinishReason | None:
        return self.decoding.finish_reason

    @property
    def prior(self) -> tuple[float, ...]:
        return self.decoding.prior

    def posterior(self) -> tuple[float, ...]:
        return self.decoding.posterior()

    def span_posterior(self, start: int, end: int) -> tuple[float, ...]:
        return self.decoding.span_posterior(start, end)


class RagSequenceStream(_TextStream):
    """RAG-Sequence text: the first ``next()`` decodes and scores every candidate; the chosen
    answer then comes out in pieces. ``decoding`` (a SequenceDecoding) is set from then on."""

    def __init__(
        self,
        run: Callable[[], SequenceDecoding],
        tokenizer: Any,
        tokenizer_lock: AbstractContextManager[Any] | None = None,
    ) -> None:
        self._run = run
        self._tokenizer = tokenizer
        self._tokenizer_lock = tokenizer_lock
        self.decoding: SequenceDecoding | None = None
        super().__init__(tokenizer, tokenizer_lock)

    def _pieces(self) -> Iterator[str]:
        try:
            self.decoding = self._run()
        except Exception as exc:
            raise GenerationError(
                f"RAG-Sequence decoding failed: {type(exc).__name__}: {exc}"
            ) from exc
        yield from self._push_all(self.decoding.best.token_ids)

    def _done(self) -> SequenceDecoding:
        if self.decoding is None:
            raise RuntimeError("RAG-Sequence has not decoded yet: iterate the stream first")
        return self.decoding

    @property
    def token_ids(self) -> tuple[int, ...]:
        return self._done().best.token_ids

    @property
    def finish_reason(self) -> FinishReason | None:
        return None if self.decoding is None else self.decoding.finish_reason

    def candidate_texts(self) -> tuple[str, ...]:
        """Every candidate's text, best first (same order as decoding.candidates)."""
        with self._tokenizer_lock if self._tokenizer_lock is not None else nullcontext():
            return tuple(
                str(self._tokenizer.decode(list(c.token_ids), skip_special_tokens=True))
                for c in self._done().candidates
            )

    def posterior(self) -> tuple[float, ...]:
        return self._done().best.posterior

    def span_posterior(self, start: int, end: int) -> tuple[float, ...]:
        return self._done().span_posterior(start, end)


def _eos_ids(generator: TransformersGenerator) -> frozenset[int]:
    """The ids that end an answer: the model's generation_config EOS ids and the tokenizer's."""
    ids: set[int] = set()
    value = getattr(generator.hf_model.generation_config, "eos_token_id", None)
    if isinstance(value, list | tuple):
        ids.update(int(v) for v in value)
    elif value is not None:
        ids.add(int(value))
    if generator.hf_tokenizer.eos_token_id is not None:
        ids.add(int(generator.hf_tokenizer.eos_token_id))
    return frozenset(ids)


@dataclass(frozen=True)
class PassagePrompts:
    """A question and its k passages as prompts for a local generator: the PassageMixture that
    RagTokenDecoding and RagSequenceDecoding run on, and the generator whose tokenizer turns
    their token ids back into text (``stream``). Made by ``passage_prompts``."""

    generator: TransformersGenerator
    mixture: PassageMixture

    @overload
    def stream(self, decoding: RagTokenDecoding) -> RagTokenStream: ...

    @overload
    def stream(self, decoding: RagSequenceDecoding) -> RagSequenceStream: ...

    def stream(
        self, decoding: RagTokenDecoding | RagSequenceDecoding
    ) -> RagTokenStream | RagSequenceStream:
        """The answer text of a decoding of ``mixture``, as an iterator of text pieces."""
        if decoding.mixture is not self.mixture:
            raise ValueError("the decoding runs on other passages than these prompts")
        tokenizer, lock = self.generator.hf_tokenizer, self.generator.tokenizer_lock
        if isinstance(decoding, RagTokenDecoding):
            return RagTokenStream(decoding, tokenizer, lock)
        return RagSequenceStream(decoding.run, tokenizer, lock)


def passage_prompts(
    generator: TransformersGenerator,
    question: str,
    passages: Sequence[Hit | str],
    *,
    scores: Sequence[float] | None = None,
    tau: float = DEFAULT_TAU,
    messages_for: MessagesFor = passage_messages,
) -> PassagePrompts:
    """One prompt per passage (numbered from 1), encoded as TransformersGenerator encodes a prompt.

    ``scores`` default to the hits' retrieval scores; the prior is softmax(score / tau). The
    generator is loaded here; nothing is generated until a stream made from these is iterated.
    """
    if not passages:
        raise ValueError("no passages: RAG decoding needs at least one retrieved passage (k=0)")
    if scores is None:
        if not all(isinstance(p, Hit) for p in passages):
            raise ValueError("scores are required when passages are plain strings")
        scores = [p.score for p in passages if isinstance(p, Hit)]
    if len(scores) != len(passages):
        raise ValueError(f"{len(passages)} passages but {len(scores)} scores")
    generator.load()
    configure_threads(generator.threads)
    contexts = []
    for number, passage in enumerate(passages, start=1):
        try:
            encoded = generator.encode(messages_for(question, passage, number))
        except Exception as exc:
            raise GenerationError(f"cannot build the prompt of passage {number}: {exc}") from exc
        contexts.append([int(i) for i in encoded["input_ids"][0].tolist()])
    mixture = PassageMixture(
        generator.hf_model,
        contexts,
        scores,
        tau=tau,
        eos_token_ids=_eos_ids(generator),
        lock=generator.generation_lock,
    )
    return PassagePrompts(generator, mixture)
