"""/healthz, for load balancers and monitors, and /api/docs, the API's page (it lists
/openapi.json without any external asset: FastAPI's own /docs loads from a CDN, so it is off)."""

from __future__ import annotations

import anyio
from fastapi import APIRouter
from fastapi.responses import HTMLResponse

from webapp.api.deps import State
from webapp.api.schemas import HealthOut

router = APIRouter()


@router.get("/healthz", response_model=HealthOut, tags=["health"])
async def healthz(state: State) -> HealthOut:
    """The app is up: 200 with the number of documents (no key needed). It has threads of
    its own, so it answers at once however many answers are being generated."""
    count = await anyio.to_thread.run_sync(
        state.engine.count_documents, limiter=state.health_limiter
    )
    return HealthOut(documents=count, accounts=state.accounts)


@router.get("/api/docs", response_class=HTMLResponse, include_in_schema=False)
def api_docs() -> str:
    return DOCS_PAGE


DOCS_PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>ragchat API</title>
<meta name="viewport" content="width=device-width, initial-scale=1">
<style>
body { font: 15px/1.5 system-ui, sans-serif; max-width: 60rem; margin: 2rem auto; padding: 0 1rem;
       color: #1e293b; }
code, pre { font-family: ui-monospace, monospace; background: #f1f5f9; border-radius: 4px; }
pre { padding: .6rem; overflow-x: auto; }
.op { border-top: 1px solid #e2e8f0; padding: .6rem 0; }
.m { display: inline-block; min-width: 4.5rem; font-weight: 600; color: #4338ca; }
</style></head>
<body><h1>ragchat API</h1>
<p>Everything here is described by <a href="/openapi.json"><code>/openapi.json</code></a>.
With accounts on, send <code>Authorization: Bearer KEY</code>
(keys from <code>ragchat apikey create --user NAME</code>).</p>
<div id="ops">Loading…</div>
<script>
const esc = (s) => String(s ?? '').replace(/[&<>"']/g,
  (c) => ({'&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;'}[c]));
fetch('/openapi.json').then((r) => r.json()).then((spec) => {
  const out = [];
  for (const [path, ops] of Object.entries(spec.paths)) {
    for (const [method, op] of Object.entries(ops)) {
      out.push(`<div class="op"><span class="m">${esc(method.toUpperCase())}</span>` +
        `<code>${esc(path)}</code><div>${esc(op.summary)}</div>` +
        `<div>${esc(op.description)}</div></div>`);
    }
  }
  document.getElementById('ops').innerHTML = out.join('');
});
</script></body></html>
"""
