"""Concurrency: 1, 4 and 8 simultaneous chats against a real `ragchat serve`.

One server with the default models and settings (demo knowledge base). Each level asks the same
set of demo questions with N clients at once (gradio_client, a fresh Client and conversation per
question, /ask with the UI's default settings), each client taking the next question when its
answer is done, so the levels differ only in how many chats are open at a time. Reports answers per minute and the p50/p95
time to the first answer text as each client sees it. Generation is serialized on the one CPU
model (the /ask queue runs one answer at a time), so the time to first token grows with the
queue while throughput stays about flat: the figure to watch is how far.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Sequence

from bench.common import BenchResult, Check, fmt, log, median, p, print_result

TARGET_THROUGHPUT_RATIO = 0.9  # answers/min at the highest level vs one chat at a time


def run(levels: Sequence[int] = (1, 4, 8), questions_per_level: int = 8) -> BenchResult:
    from bench.server import QUESTIONS, concurrent_chats, start_server, timed_chat

    started = time.perf_counter()
    levels = sorted(set(levels))
    log("concurrency: starting ragchat serve")
    server = start_server()
    rows: list[tuple[str, str]] = []
    data: dict[str, object] = {}
    per_min: dict[int, float] = {}
    try:
        timed_chat(server.url, QUESTIONS[-1])  # warm-up: first-use costs are not concurrency
        for n in levels:
            questions = [QUESTIONS[i % len(QUESTIONS)] for i in range(max(n, questions_per_level))]
            timings, wall = concurrent_chats(server.url, questions, n)
            ttft = [t.first_token_s for t in timings]
            per_min[n] = len(questions) / wall * 60
            rows.append(
                (
                    f"{n} at once, {len(questions)} questions",
                    f"{fmt(per_min[n])} answers/min; first token p50 "
                    f"{fmt(median(ttft))} s, p95 {fmt(p(ttft, 95))} s; wall {wall:.0f} s",
                )
            )
            data[str(n)] = {"ttft": ttft, "total": [t.total_s for t in timings], "wall": wall}
            log(f"concurrency: {rows[-1][0]}: {rows[-1][1]}")
        mem = server.memory()
        rows.append(("server VmHWM (peak) after the run", f"{mem['VmHWM'] / 1024 / 1024:.2f} GB"))
    finally:
        server.stop()
    checks = []
    if len(levels) >= 2:
        checks.append(
            Check(
                f"answers/min at {levels[-1]} at once / at {levels[0]}",
                per_min[levels[-1]] / per_min[levels[0]],
                TARGET_THROUGHPUT_RATIO,
            )
        )
    return BenchResult(
        name="concurrency",
        title="Concurrency",
        command=(
            f"python -m bench.concurrency --levels {','.join(str(n) for n in levels)} "
            f"--questions {questions_per_level}"
        ),
        rows=tuple(rows),
        checks=tuple(checks),
        notes=(
            "The issue sets no target here; the check asks that throughput does not collapse "
            "under concurrent load (at least 0.9x the one-at-a-time rate).",
            "Every level asks the same questions, so answers/min compares like with like.",
        ),
        seconds=time.perf_counter() - started,
        data=data,
    )


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m bench.concurrency",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--levels", default="1,4,8", help="simultaneous chats (1,4,8)")
    parser.add_argument(
        "--questions", type=int, default=8, help="questions asked per level (8; at least the level)"
    )
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    args = parser.parse_args(argv)
    try:
        levels = [int(x) for x in args.levels.split(",") if x.strip()]
    except ValueError:
        parser.error(f"--levels must be comma-separated integers, got {args.levels!r}")
    if not levels or min(levels) < 1:
        parser.error("--levels must be positive integers")
    print_result(run(levels, args.questions), as_json=args.json)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
