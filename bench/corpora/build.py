"""Build the evaluation corpora: `python -m bench.corpora.build [--out DIR] [--only NAME]`.

Each corpus goes to OUT/<name>/ (corpus.jsonl, queries.jsonl, qrels/{tune,test,all}.tsv,
unanswerable*.txt, manifest.json, README.md). OUT defaults to $RAGCHAT_EVAL_DATA, else
~/.cache/ragchat/eval. The Debian packages are downloaded once into OUT/_debian/debs (never
installed) and unpacked into OUT/_debian/src.
"""

from __future__ import annotations

import argparse
import hashlib
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from bench.corpora import debian_faq, fetchmail, pyfaq, sqlite
from bench.corpora.common import (
    MIN_WORDS,
    SEED,
    BuildError,
    Corpus,
    Package,
    assign_splits,
    default_out,
    fetch_package,
    write_beir,
    write_json,
    write_text,
    write_unanswerable,
)

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent.parent
PYFAQ_UNANSWERABLE = ROOT / "rag_core" / "evaldata" / "pyfaq_unanswerable.txt"

# name -> (Debian package, builder); pyfaq is derived from the shared dev set instead
PACKAGED: dict[str, tuple[str, Callable[[Package], Corpus]]] = {
    debian_faq.NAME: (debian_faq.PACKAGE, debian_faq.build),
    sqlite.NAME: (sqlite.PACKAGE, sqlite.build),
    fetchmail.NAME: (fetchmail.PACKAGE, fetchmail.build),
}
NAMES = (*PACKAGED, pyfaq.NAME)


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def build_packaged(name: str, out: Path, seed: int = SEED) -> dict[str, Any]:
    """Download, section, split and write one corpus; returns its manifest."""
    package_name, builder = PACKAGED[name]
    package = fetch_package(package_name, out / "_debian")
    corpus = builder(package)
    splits = assign_splits(corpus, seed)
    folder = out / name
    write_beir(folder, corpus.docs, splits["all"], splits)
    unanswerable = write_unanswerable(folder, HERE / name / "unanswerable.txt", seed)
    write_text(folder / "README.md", (HERE / name / "README.md").read_text(encoding="utf-8"))
    chapters: dict[str, list[str]] = {}
    for split in ("tune", "test"):
        chapters[split] = sorted({q.chapter for q in splits[split]})
    manifest: dict[str, Any] = {
        "name": name,
        "package": package.name,
        "version": package.version,
        "deb": package.deb.name,
        "deb_sha256": package.sha256,
        "seed": seed,
        "min_words": MIN_WORDS,
        "split_by": "chapter" if corpus.by_chapter else "seeded random half",
        "sections": len(corpus.docs),
        "questions": {s: len(qs) for s, qs in splits.items()},
        "dropped": [{"question": d.question, "reason": d.reason} for d in corpus.dropped],
        "unanswerable": unanswerable,
        **corpus.manifest,
    }
    if corpus.by_chapter:
        sizes: dict[str, int] = {}
        for q in splits["all"]:
            sizes[q.chapter] = sizes.get(q.chapter, 0) + 1
        manifest["chapters"] = {**chapters, "sizes": dict(sorted(sizes.items()))}
    manifest["files"] = _file_hashes(folder)
    write_json(folder / "manifest.json", manifest)
    return manifest


def build_pyfaq(out: Path, source: Path, seed: int = SEED) -> dict[str, Any]:
    manifest = pyfaq.build(out, source, seed)
    folder = out / pyfaq.NAME
    manifest["unanswerable"] = write_unanswerable(folder, PYFAQ_UNANSWERABLE, seed)
    manifest["files"] = _file_hashes(folder)
    write_json(folder / "manifest.json", manifest)
    return manifest


def _file_hashes(folder: Path) -> dict[str, str]:
    """sha256 of each written file (links to pyfaq's shared files included), manifest aside."""
    return {
        p.relative_to(folder).as_posix(): _sha(p)
        for p in sorted(folder.rglob("*"))
        if p.is_file() and p.name != "manifest.json" and not p.name.endswith(".tmp")
    }


def summary(name: str, manifest: dict[str, Any]) -> str:
    q = manifest.get("questions", {})
    u = manifest.get("unanswerable", {})
    parts = [f"{name}:"]
    if "sections" in manifest:
        parts.append(f"{manifest['sections']} sections,")
    parts.append(
        ", ".join(f"{k} {v}" for k, v in q.items())
        + " questions"
        + (f", {len(manifest['dropped'])} dropped" if "dropped" in manifest else "")
        + f"; unanswerable tune {u.get('tune')} / test {u.get('test')}"
    )
    return " ".join(parts)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.corpora.build", description=__doc__)
    parser.add_argument(
        "--out",
        type=Path,
        default=None,
        help="output folder (default: $RAGCHAT_EVAL_DATA, else ~/.cache/ragchat/eval)",
    )
    parser.add_argument(
        "--only", choices=NAMES, action="append", help="build only NAME (repeatable)"
    )
    parser.add_argument(
        "--pyfaq", type=Path, default=pyfaq.DEFAULT_SOURCE, help="the shared pyfaq dev set"
    )
    args = parser.parse_args(argv)
    out = (args.out or default_out()).expanduser().resolve()
    names = args.only or list(NAMES)
    try:
        for name in names:
            if name == pyfaq.NAME:
                manifest = build_pyfaq(out, args.pyfaq)
            else:
                manifest = build_packaged(name, out)
            print(summary(name, manifest), f"-> {out / name}", flush=True)
    except (BuildError, FileNotFoundError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
