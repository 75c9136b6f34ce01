"""create_app(engine, settings) -> FastAPI: the REST API, an OpenAI-compatible endpoint, the UI.

- ``/api/...``: documents (upload, list, show, delete), ask (JSON or server-sent events),
  conversations (list, show, rename, delete, export) and a turn's citations and passages.
- ``/v1/chat/completions`` and ``/v1/models``: OpenAI's chat API, so OpenAI clients can use
  ragchat as a model; answers carry their citations in an extra ``citations`` field.
- ``/healthz``: liveness with the document count. ``/openapi.json`` documents everything; the
  ``/api/docs`` page lists it without any external asset (FastAPI's own /docs loads from a CDN,
  so it is switched off).
- ``/``: the Gradio UI, mounted (``mount=True``).

With accounts (RAGCHAT_AUTH) every /api and /v1 request needs ``Authorization: Bearer KEY``,
a per-user key from ``ragchat apikey create``; without accounts the API is open to whoever can
reach the port, as the single local user. Other users' conversations and turns answer 404, the
same as ids that do not exist, so ids reveal nothing. See docs/API.md.

The package, one module per concern: app.py (create_app: routers, error handlers, the UI, the
guards), deps.py (what routes get with ``Depends``: engine, settings, caller, actor, limits),
schemas.py (request and response bodies), errors.py, streaming.py (running an answer, SSE),
and one APIRouter per resource: health.py, documents.py, ask.py, conversations.py, openai.py.
Turns and answers become JSON through webapp/serialize.py, as in the CLI and the Gradio API.
"""

from webapp.api.app import create_app

__all__ = ["create_app"]
