"""Peak memory of ingesting one big file, whatever its shape: the whole `ragchat ingest` process.

Each case is `python -m webapp.cli ingest FILE` in a fresh subprocess with its own empty
RAGCHAT_HOME and default settings (real default embedder, Chroma, BM25, SQLite); its peak
resident set size is the child's own `ru_maxrss` (see `peak_rss`), so it includes the
interpreter, torch and the loaded embedder. The cases:

- one-line: words separated by single spaces, no newline and no sentence punctuation (a text
  with no sentence boundary at all: the chunker must cut it into bounded pieces by itself);
- short-lines: the same words in lines of at most 80 characters, still without punctuation;
- pdf: a PDF made with fpdf2, one page per few hundred words, pages numbered;
- tiny (for reference): a one-paragraph text file, the fixed cost of the process.

The inputs are generated from a fixed word list with a seeded generator (identical bytes on every
run) and cached under ~/.cache/ragchat/bench/ingest_memory. `--code-root` runs another checkout's
code in the child (the figures before a change: `git archive COMMIT | tar -x -C DIR`).
"""

from __future__ import annotations

import argparse
import os
import random
import re
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from bench.common import CACHE, ROOT, BenchResult, Check, log, print_result

TARGET_MIB = 1024.0  # peak RSS of the whole process per case: under 1 GiB
CASES = ("one-line", "short-lines", "pdf")
MB = 1_000_000  # file sizes in decimal MB: "20 MB" stays within RAGCHAT_MAX_TEXT_CHARS (20,000,000)

# Common English words: the default embedder's tokenizer has nearly all as single tokens, so the
# chunk count is what real prose of that size gives (about 45 words per 1,000 characters).
_WORD_LIST = """
the of and to in is that for it as was with be by on not he this are or his from at which but have
an they you were her she there been one all we their has would when if so no will more can out up
who them some into time only other new could these two may then do first any like now my such make
over our even most made after also did many before must through back years where much your way well
down should because each just those people how too little state good very world still own see men
work long get here between both life being under never day same another know while last might us
great old year off come since against go came right used take three states himself few house use
during without again place around however home small found thought went say part once general high
upon school every does got united left number course war until always away something fact though
water less public put think almost hand enough far took head yet government system better set told
nothing night end why called find look going asked later point knew city next program business give
group toward young days let room president side social given present several order national
possible rather second face per among form important often things looked early white case become
large big need four within felt along children saw best church ever least power development light
thing seemed family interest want members mind country area others done turned although open help
service certain kind problem began different door thus sense means whole matter perhaps itself law
human line above name example action company hands local show whether five history gave today either
act feet across taken past quite anything seen having death week experience body word half really
field car words already themselves information tell together college shall money period held keep
sure free seems real probably behind clear
"""
WORDS = tuple(_WORD_LIST.split())


@dataclass(frozen=True)
class Measured:
    """One child process: its peak RSS, wall time, exit status and what ingest said."""

    case: str
    file_mb: float
    peak_mib: float
    seconds: float
    returncode: int
    chunks: int | None
    output: str


def _words(n_bytes: int, seed: int, line_width: int | None) -> str:
    """Random words from WORDS, `n_bytes` at most, on one line or wrapped at `line_width`."""
    rng = random.Random(seed)
    out: list[str] = []
    size = line = 0
    while True:
        word = rng.choice(WORDS)
        wrap = line_width is not None and line + 1 + len(word) > line_width
        sep = ("\n" if wrap else " ") if out else ""
        if size + len(sep) + len(word) > n_bytes:
            return "".join(out)
        out += [sep, word]
        size += len(sep) + len(word)
        line = len(word) if wrap else line + len(sep) + len(word)


def make_one_line(path: Path, mb: float, seed: int = 1) -> Path:
    """`mb` MB of words on one line: no newline, no sentence punctuation."""
    path.write_text(_words(int(mb * MB), seed, None), encoding="utf-8")
    return path


def make_short_lines(path: Path, mb: float, width: int = 80, seed: int = 2) -> Path:
    """`mb` MB of words in lines of at most `width` characters, no sentence punctuation."""
    path.write_text(_words(int(mb * MB), seed, width) + "\n", encoding="utf-8")
    return path


def make_pdf(path: Path, pages: int, words_per_page: int = 300, seed: int = 3) -> Path:
    """A text PDF (fpdf2, Helvetica 8 pt) of `pages` pages of `words_per_page` words each."""
    from fpdf import FPDF

    rng = random.Random(seed)
    pdf = FPDF()
    pdf.set_auto_page_break(auto=False)
    pdf.set_font("Helvetica", size=8)
    for number in range(1, pages + 1):
        pdf.add_page()
        pdf.set_xy(10, 10)
        words = " ".join(rng.choice(WORDS) for _ in range(words_per_page))
        pdf.multi_cell(0, 4, f"Page {number}. {words}")
    path.write_bytes(bytes(pdf.output()))
    return path


def input_file(case: str, mb: float, pages: int, words_per_page: int) -> Path:
    """The (cached) input of a case."""
    folder = CACHE / "ingest_memory"
    folder.mkdir(parents=True, exist_ok=True)
    if case == "one-line":
        path, make = folder / f"one-line-{mb:g}mb.txt", lambda p: make_one_line(p, mb)
    elif case == "short-lines":
        path, make = folder / f"short-lines-{mb:g}mb.txt", lambda p: make_short_lines(p, mb)
    elif case == "pdf":
        path = folder / f"pages-{pages}x{words_per_page}.pdf"
        make = lambda p: make_pdf(p, pages, words_per_page)  # noqa: E731
    elif case == "tiny":
        path = folder / "tiny.txt"
        make = lambda p: p.write_text(  # noqa: E731
            "A small file. It shows what the process costs with the embedder loaded.\n"
        )
    else:
        raise ValueError(f"unknown case {case!r}")
    if not path.exists():
        log(f"ingest_memory: writing {path.name}")
        tmp = path.with_suffix(path.suffix + ".tmp")
        make(tmp)
        tmp.replace(path)
    return path


def child_env(
    home: Path, code_root: Path, settings: dict[str, str] | None = None
) -> dict[str, str]:
    """The environment of an ingest child: default settings (but RAGCHAT_HOME and `settings`,
    e.g. {"RAGCHAT_CHUNK_SIZE": "1024"}), offline."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("RAGCHAT_")}
    if "RAGCHAT_MODEL_CACHE" in os.environ:
        env["RAGCHAT_MODEL_CACHE"] = os.environ["RAGCHAT_MODEL_CACHE"]
    env.update(
        RAGCHAT_HOME=str(home),
        PYTHONPATH=str(code_root),
        HF_HUB_OFFLINE="1",
        TRANSFORMERS_OFFLINE="1",
        ANONYMIZED_TELEMETRY="False",
        TOKENIZERS_PARALLELISM="false",
    )
    env.update(settings or {})
    return env


# Linux copies the high-water mark of the spawning process into the child's `ru_maxrss` at exec
# (fork and vfork alike), so a child started straight from a big process (a test session with the
# models loaded) would report that process's peak. A small Python process spawns the command
# instead and reports the command's own `ru_maxrss` from its `os.wait4`.
_SPAWN = """
import os, subprocess, sys
proc = subprocess.Popen(sys.argv[2:])
_, status, usage = os.wait4(proc.pid, 0)
with open(sys.argv[1], "w") as out:
    out.write(str(usage.ru_maxrss))
sys.exit(os.waitstatus_to_exitcode(status))
"""


def peak_rss(argv: Sequence[str], *, env: dict[str, str], cwd: Path) -> tuple[float, int, str]:
    """Run `argv` to its end; (its peak RSS in MiB, exit status, its stdout and stderr)."""
    with (
        tempfile.TemporaryFile(mode="w+") as out,
        tempfile.NamedTemporaryFile(mode="r", suffix=".maxrss") as report,
    ):
        wrapped = [sys.executable, "-c", _SPAWN, report.name, *argv]
        code = subprocess.run(
            wrapped, cwd=cwd, env=env, stdout=out, stderr=subprocess.STDOUT
        ).returncode
        out.seek(0)
        text = out.read()
        maxrss = report.read().strip()
    if not maxrss:
        raise RuntimeError(f"the command's peak memory was not reported: {text[-500:]}")
    return int(maxrss) / 1024, code, text  # ru_maxrss: KiB on Linux


def measure(
    case: str, path: Path, code_root: Path = ROOT, settings: dict[str, str] | None = None
) -> Measured:
    """`ragchat ingest PATH` in a fresh process and data folder (`settings`: RAGCHAT_ variables)."""
    home = Path(tempfile.mkdtemp(prefix="ragchat-bench-memory-"))
    try:
        started = time.perf_counter()
        peak, code, output = peak_rss(
            [sys.executable, "-m", "webapp.cli", "ingest", str(path)],
            env=child_env(home, code_root, settings),
            cwd=code_root,
        )
        seconds = time.perf_counter() - started
    finally:
        shutil.rmtree(home, ignore_errors=True)
    m = re.search(r": (\d+) chunks", output)
    measured = Measured(
        case,
        path.stat().st_size / MB,
        peak,
        seconds,
        code,
        int(m.group(1)) if m else None,
        output[-2000:],
    )
    log(
        f"ingest_memory: {case}: peak {peak:,.0f} MiB, {seconds:.0f} s, exit {code},"
        f" {measured.chunks} chunks"
    )
    return measured


def run(
    mb: float = 20.0,
    pages: int = 2000,
    words_per_page: int = 300,
    cases: Sequence[str] = CASES,
    target_mib: float = TARGET_MIB,
    code_root: Path = ROOT,
) -> BenchResult:
    started = time.perf_counter()
    results = [measure("tiny", input_file("tiny", mb, pages, words_per_page), code_root)]
    for case in cases:
        results.append(measure(case, input_file(case, mb, pages, words_per_page), code_root))
    rows = []
    checks = []
    for r in results:
        what = {
            "tiny": "tiny text file (the process with the embedder loaded)",
            "one-line": f"{r.file_mb:.1f} MB of words on one line",
            "short-lines": f"{r.file_mb:.1f} MB of words in 80-character lines",
            "pdf": f"{pages:,}-page PDF ({words_per_page} words a page, {r.file_mb:.1f} MB)",
        }[r.case]
        chunks = f"{r.chunks:,} chunks" if r.chunks is not None else "no chunk count"
        status = "" if r.returncode == 0 else f", FAILED (exit {r.returncode})"
        rows.append(
            (
                f"{r.case}: {what}",
                f"peak RSS {r.peak_mib:,.0f} MiB; {chunks} in {r.seconds:.0f} s{status}",
            )
        )
        if r.case != "tiny":
            value = r.peak_mib if r.returncode == 0 else None
            checks.append(
                Check(f"peak RSS, {r.case}", value, target_mib, at_most=True, unit=" MiB")
            )
    where = "" if code_root == ROOT else f" --code-root {code_root}"
    return BenchResult(
        name="ingest_memory",
        title="Ingestion memory",
        command=(
            f"python -m bench.ingest_memory --mb {mb:g} --pages {pages} --words-per-page"
            f" {words_per_page} --cases {','.join(cases)}{where}"
        ),
        rows=tuple(rows),
        checks=tuple(checks),
        notes=(
            "Each case is `python -m webapp.cli ingest FILE` in a fresh process and data folder "
            "with default settings; peak RSS is the child's ru_maxrss (os.wait4), the whole "
            "process: interpreter, torch, the default embedder, Chroma and the keyword index.",
        ),
        seconds=time.perf_counter() - started,
        data={
            r.case: {
                "peak_mib": r.peak_mib,
                "seconds": r.seconds,
                "chunks": r.chunks,
                "returncode": r.returncode,
                "file_mb": r.file_mb,
            }
            for r in results
        },
    )


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m bench.ingest_memory",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--mb", type=float, default=20.0, help="size of the text files (20 MB)")
    parser.add_argument("--pages", type=int, default=2000, help="pages of the PDF (2,000)")
    parser.add_argument("--words-per-page", type=int, default=300, help="words a PDF page (300)")
    parser.add_argument(
        "--cases", default=",".join(CASES), help=f"comma-separated subset of {','.join(CASES)}"
    )
    parser.add_argument(
        "--target-mib", type=float, default=TARGET_MIB, help="peak RSS target per case (1024)"
    )
    parser.add_argument(
        "--code-root",
        type=Path,
        default=ROOT,
        help="the ragchat checkout whose code the ingest children run (default: this one)",
    )
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    args = parser.parse_args(argv)
    cases = [c.strip() for c in args.cases.split(",") if c.strip()]
    unknown = [c for c in cases if c not in CASES]
    if unknown:
        parser.error(f"unknown case(s) {unknown}; choose from {list(CASES)}")
    result = run(
        args.mb, args.pages, args.words_per_page, cases, args.target_mib, args.code_root.resolve()
    )
    print_result(result, as_json=args.json)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
