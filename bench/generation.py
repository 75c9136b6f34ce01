"""Generation: time to first token and decode speed of the engine vs raw `model.generate`, int8 vs
fp32, and the memory of a running server with the default models.

- First token: `Engine.answer` (retrieval, refusal gate, prompt, streaming generator) until its
  first Token, vs retrieval + the same prompt + `model.generate(max_new_tokens=1)` on the same
  model; alternated per question, repeated, medians.
- Decode tokens/s: `TransformersGenerator.stream` vs `model.generate` with a streamer that only
  records token times, on the same prompts; (tokens - 1) / (time of last - time of first token).
- int8 (dynamic quantization of nn.Linear) vs fp32 through the same streaming generator, and
  whether the greedy answers are the same.
- Server memory: `ragchat serve` in a subprocess with the default models and settings, a few
  questions asked through /ask, then VmRSS and VmHWM (peak) from /proc.
"""

from __future__ import annotations

import argparse
import shutil
import tempfile
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, TypeVar

from bench.common import ROOT, BenchResult, Check, fmt, log, median, print_result

T = TypeVar("T")
TARGET_TTFT_RATIO = 1.10
TARGET_DECODE_RATIO = 0.95
TARGET_RSS_GB = 1.5
DEMO = ROOT / "assets" / "demo"
# Decode speed wants long answers, so that the first and last token matter little.
LONG_ANSWERS = (
    "Explain in detail everything the documents say about the Lumen L2 lamp: battery, charging, "
    "brightness, colour, care and warranty.",
    "Describe step by step how ragchat makes and checks an answer, with every detail given.",
    "Explain in detail how ragchat handles privacy, accounts and conversation history.",
    "List everything the documents say about the Lumen L2 battery and how to charge it.",
    "Describe in detail the two retrievers of ragchat and how their rankings are combined.",
    "Explain everything about the Lumen L2 warranty, care and cleaning.",
    "Describe in detail how past conversations are stored, listed and deleted in ragchat.",
    "Explain in detail how the Lumen L2 touch strip and colour temperatures work.",
)


class _TokenTimes:
    """A transformers streamer that records when each generated token arrives (nothing else)."""

    def __init__(self) -> None:
        self.times: list[float] = []
        self._prompt_seen = False

    def put(self, value: Any) -> None:
        if not self._prompt_seen:  # generate() first passes the prompt
            self._prompt_seen = True
            return
        self.times.append(time.perf_counter())

    def end(self) -> None:
        pass


def _engine(home: Path, quantize: str | None = None) -> Any:
    from rag_core.config import Settings
    from rag_core.factory import build_engine

    engine = build_engine(Settings(home=home, _env_file=None))
    for path in sorted(DEMO.iterdir()):
        result = engine.ingest_path(path)
        if result.status not in ("added", "duplicate"):
            raise RuntimeError(f"demo document {path.name}: {result.status} {result.error}")
    engine.embedder.load()  # type: ignore[attr-defined]
    engine.generator.load()  # type: ignore[attr-defined]
    return engine


def engine_first_token(engine: Any, question: str) -> float:
    """Seconds from Engine.answer to its first generated Token (then stops it)."""
    from rag_core.types import Retrieved, Token

    stop = threading.Event()
    t0 = time.perf_counter()
    first: float | None = None
    for event in engine.answer(question, stop=stop):
        if isinstance(event, Retrieved) and event.refused:
            raise RuntimeError(f"the engine refused {question!r}: pick questions it answers")
        if isinstance(event, Token) and first is None:
            first = time.perf_counter() - t0
            stop.set()
    if first is None:
        raise RuntimeError(f"no token for {question!r}")
    return first


def raw_inputs(engine: Any, question: str) -> dict[str, Any]:
    """Retrieval as the engine does it, then the same messages encoded for the model."""
    from rag_core.prompting import build_messages

    retrieved = engine.retrieve(question)
    messages = build_messages(question, retrieved.hits, (), engine.settings.max_history_turns)
    inputs: dict[str, Any] = engine.generator.encode(messages)
    return inputs


def in_thread(fn: Callable[[], T]) -> T:
    """Run `fn` in a new thread and return its result.

    The streaming generator runs model.generate in a worker thread; the raw side does too, so
    both run torch in the same kind of thread (on a busy machine, OpenMP in the main thread
    was measured up to 10x slower than in a worker thread here).
    """
    box: list[T] = []
    errors: list[BaseException] = []

    def work() -> None:
        try:
            box.append(fn())
        except BaseException as exc:  # re-raised below
            errors.append(exc)

    t = threading.Thread(target=work)
    t.start()
    t.join()
    if errors:
        raise errors[0]
    return box[0]


def raw_first_token(engine: Any, question: str) -> float:
    """Seconds for retrieval + prompt + model.generate of one token (generate in a thread)."""
    gen = engine.generator
    t0 = time.perf_counter()
    inputs = raw_inputs(engine, question)
    in_thread(
        lambda: gen.hf_model.generate(
            **inputs, max_new_tokens=1, do_sample=False, pad_token_id=gen.hf_tokenizer.eos_token_id
        )
    )
    return time.perf_counter() - t0


def messages_for(engine: Any, question: str) -> Any:
    from rag_core.prompting import build_messages

    retrieved = engine.retrieve(question)
    return build_messages(question, retrieved.hits, (), engine.settings.max_history_turns)


def stream_decode(generator: Any, messages: Any, max_new_tokens: int) -> tuple[float, float, str]:
    """TransformersGenerator.stream: (time of the first piece, time of the end, text), both
    relative to the call."""
    t0 = time.perf_counter()
    t_first: float | None = None
    text = ""
    for piece in generator.stream(messages, max_new_tokens=max_new_tokens):
        if t_first is None:
            t_first = time.perf_counter() - t0
        text += piece
    t_end = time.perf_counter() - t0
    return (t_end if t_first is None else t_first), t_end, text


def raw_decode(generator: Any, messages: Any, max_new_tokens: int) -> tuple[float, float, int, str]:
    """model.generate on the same prompt, token times from a streamer that only records them:
    (time of the first token, time of the end, tokens generated, text)."""
    inputs = generator.encode(messages)
    times = _TokenTimes()
    t0 = time.perf_counter()
    out = in_thread(
        lambda: generator.hf_model.generate(
            **inputs,
            max_new_tokens=max_new_tokens,
            do_sample=False,
            streamer=times,
            pad_token_id=generator.hf_tokenizer.eos_token_id,
        )
    )
    t_end = time.perf_counter() - t0
    n = len(times.times)
    new = out[0][inputs["input_ids"].shape[1] :]
    text = generator.hf_tokenizer.decode(new, skip_special_tokens=True)
    return times.times[0] - t0, t_end, n, text


def decode_rate(n_tokens: int, t_first: float, t_end: float) -> float:
    """Tokens per second after the first token: (n - 1) / (end - first)."""
    if n_tokens < 3 or t_end <= t_first:
        raise RuntimeError(f"too few tokens ({n_tokens}) to time decoding")
    return (n_tokens - 1) / (t_end - t_first)


def server_memory(questions: Sequence[str]) -> dict[str, int]:
    from bench.server import start_server, timed_chat

    server = start_server()
    try:
        for q in questions:
            timed_chat(server.url, q)
        return server.memory()
    finally:
        server.stop()


def run(
    questions: int = 3,
    repeats: int = 3,
    max_new_tokens: int = 64,
    server_questions: int = 3,
    int8: bool = True,
) -> BenchResult:
    from bench.server import QUESTIONS
    from rag_core.factory import offline_environment
    from rag_core.generators.transformers import TransformersGenerator

    offline_environment()
    started = time.perf_counter()
    asked = list(QUESTIONS[:questions])
    home = Path(tempfile.mkdtemp(prefix="ragchat-bench-gen-"))
    rows: list[tuple[str, str]] = []
    checks: list[Check] = []
    notes: list[str] = []
    data: dict[str, Any] = {}
    try:
        log("generation: building an engine on the demo documents")
        engine = _engine(home)
        gen = engine.generator
        for q in asked:  # warm-up
            engine_first_token(engine, q)
            raw_first_token(engine, q)
        ttft: dict[str, list[float]] = {"engine": [], "raw": []}
        for r in range(repeats):
            for q in asked:
                order = ("engine", "raw") if r % 2 == 0 else ("raw", "engine")
                for side in order:
                    f = engine_first_token if side == "engine" else raw_first_token
                    ttft[side].append(f(engine, q))
        ttft_ratios = [a / b for a, b in zip(ttft["engine"], ttft["raw"], strict=True)]
        log(
            f"generation: first token engine {median(ttft['engine']):.2f} s, "
            f"raw {median(ttft['raw']):.2f} s"
        )

        prompts = [messages_for(engine, q) for q in LONG_ANSWERS[: len(asked)]]
        dec: dict[str, list[float]] = {"stream": [], "raw": []}
        counts: dict[int, int] = {}
        stream_at: dict[int, tuple[float, float, str]] = {}
        for r in range(repeats):
            for i, m in enumerate(prompts):
                order = ("stream", "raw") if r % 2 == 0 else ("raw", "stream")
                for side in order:
                    if side == "raw":
                        first, end, n, raw_text = raw_decode(gen, m, max_new_tokens)
                        counts[i] = n
                        dec["raw"].append(decode_rate(n, first, end))
                    else:
                        first, end, text = stream_decode(gen, m, max_new_tokens)
                        stream_at[i] = (first, end, text)
                        continue
                first, end, text = stream_at[i]
                if text.strip() != raw_text.strip():
                    raise RuntimeError(
                        f"greedy stream and raw generate differ: {text!r} / {raw_text!r}"
                    )
                dec["stream"].append(decode_rate(counts[i], first, end))
        dec_ratios = [a / b for a, b in zip(dec["stream"], dec["raw"], strict=True)]
        log(
            f"generation: decode stream {median(dec['stream']):.1f} tok/s, "
            f"raw {median(dec['raw']):.1f} tok/s"
        )
        rows += [
            (
                "prompts",
                f"{len(asked)} questions on the demo documents, top {engine.settings.top_k} "
                f"passages, {median([int(gen.encode(m)['input_ids'].shape[1]) for m in prompts]):.0f}"
                " prompt tokens (median)",
            ),
            ("first token: engine (median)", f"{median(ttft['engine']):.3f} s"),
            ("first token: retrieval + raw generate (median)", f"{median(ttft['raw']):.3f} s"),
            ("decode: streaming generator (median)", f"{fmt(median(dec['stream']))} tokens/s"),
            ("decode: raw model.generate (median)", f"{fmt(median(dec['raw']))} tokens/s"),
        ]
        checks.append(
            Check("first token engine / raw", median(ttft_ratios), TARGET_TTFT_RATIO, at_most=True)
        )
        checks.append(
            Check("decode tokens/s streaming / raw", median(dec_ratios), TARGET_DECODE_RATIO)
        )
        data.update(ttft=ttft, decode=dec)

        if int8:
            log("generation: int8 vs fp32")
            q8 = TransformersGenerator(
                "default", cache_dir=engine.settings.models_path, quantize="int8"
            )
            q8.load()
            speed: dict[str, list[float]] = {"fp32": [], "int8": []}
            texts: dict[str, dict[int, str]] = {"fp32": {}, "int8": {}}
            both = [messages_for(engine, q) for q in asked] + prompts
            for r in range(repeats):
                for i, m in enumerate(both):
                    order = ("fp32", "int8") if r % 2 == 0 else ("int8", "fp32")
                    for side in order:
                        g = gen if side == "fp32" else q8
                        first, end, text = stream_decode(g, m, max_new_tokens)
                        n = g.count_tokens(text)
                        texts[side][i] = text
                        if n >= 3:  # an answer of a token or two says nothing about speed
                            speed[side].append((n - 1) / (end - first))
            same = sum(texts["fp32"][i] == texts["int8"][i] for i in texts["fp32"])
            if speed["int8"] and speed["fp32"]:
                ratio8 = median(speed["int8"]) / median(speed["fp32"])
                speed_text = (
                    f"{fmt(median(speed['int8']))} / {fmt(median(speed['fp32']))} tokens/s "
                    f"= {ratio8:.2f}x"
                )
            else:
                speed_text = "n/a (an answer of under 3 tokens)"
            rows += [
                ("decode int8 / fp32 (median)", speed_text),
                (
                    "greedy answers identical int8 vs fp32",
                    f"{same} of {len(both)} (first {max_new_tokens} tokens)",
                ),
            ]
            for i in texts["fp32"]:
                if texts["fp32"][i] != texts["int8"][i]:
                    notes.append(
                        f"fp32: {texts['fp32'][i][:160]!r} / int8: {texts['int8'][i][:160]!r}"
                    )
                    break
            data.update(int8=speed, int8_same=same)
            del q8
        del engine
    finally:
        shutil.rmtree(home, ignore_errors=True)

    if server_questions > 0:
        log("generation: server memory")
        mem = server_memory(list(QUESTIONS[:server_questions]))
        rss_gb = mem["VmRSS"] / 1024 / 1024
        rows += [
            (f"server VmRSS after {server_questions} questions", f"{rss_gb:.2f} GB"),
            ("server VmHWM (peak)", f"{mem['VmHWM'] / 1024 / 1024:.2f} GB"),
        ]
        checks.append(Check("server RSS", rss_gb, TARGET_RSS_GB, at_most=True, unit=" GB"))
        data.update(memory_kb=mem)

    return BenchResult(
        name="generation",
        title="Generation",
        command=(
            f"python -m bench.generation --questions {questions} --repeats {repeats} "
            f"--max-new-tokens {max_new_tokens} --server-questions {server_questions}"
            + ("" if int8 else " --no-int8")
        ),
        rows=tuple(rows),
        checks=tuple(checks),
        notes=(
            "Decode speed is (tokens - 1) / (end of generation - first token), on questions that "
            "ask for long answers; greedy decoding gives both sides the same tokens (checked), "
            "counted on the raw side. int8 vs fp32 counts the tokens of the text received.",
            *notes,
        ),
        seconds=time.perf_counter() - started,
        data=data,
    )


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m bench.generation",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--questions", type=int, default=3, help="questions (3, at most 8)")
    parser.add_argument("--repeats", type=int, default=3, help="rounds per side (3)")
    parser.add_argument("--max-new-tokens", type=int, default=64, help="tokens decoded (64)")
    parser.add_argument(
        "--server-questions",
        type=int,
        default=3,
        help="questions asked of the server before reading its memory (3; 0 skips)",
    )
    parser.add_argument("--no-int8", action="store_true", help="skip the int8 comparison")
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    args = parser.parse_args(argv)
    if not 1 <= args.questions <= 8:
        parser.error("--questions must be between 1 and 8")
    result = run(
        args.questions, args.repeats, args.max_new_tokens, args.server_questions, not args.no_int8
    )
    print_result(result, as_json=args.json)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
