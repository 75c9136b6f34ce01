"""Question-answer retrieval corpora in BEIR format, built from Debian documentation packages.

`python -m bench.corpora.build` writes them into the eval cache (see bench/corpora/README.md).
"""
