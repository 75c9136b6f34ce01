"""Attacks a browser makes possible, tried in a real Chromium.

- Cross-site reads: ragchat behind a TLS proxy as https://ragchat.test, alice signed in; a page
  on https://evil.test fetches her conversations with her cookies. It must get nothing, while
  the same fetch from ragchat's own origin works.
- HTML in Gradio's pop-ups: a document named with a link and an image; the warning that lists
  the document names must show them as text: no element, no request.
"""

from __future__ import annotations

import asyncio
import http.server
import json
import ssl
import subprocess
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from playwright.sync_api import expect

from tests.e2e.conftest import CHROMIUM, CHROMIUM_ARGS
from tests.webapp_server import RunningServer, free_port, launch
from webapp.auth import hash_password

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(600)]


def make_certificate(folder: Path) -> tuple[Path, Path]:
    """A self-signed certificate for ragchat.test and evil.test (openssl, from Debian)."""
    key, cert = folder / "key.pem", folder / "cert.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
         "-keyout", str(key), "-out", str(cert), "-subj", "/CN=ragchat.test",
         "-addext", "subjectAltName=DNS:ragchat.test,DNS:evil.test"],
        check=True, capture_output=True, timeout=60,
    )  # fmt: skip
    return key, cert


class TlsProxy:
    """A TLS-terminating reverse proxy (as nginx in front of ragchat would be): bytes are
    passed through unchanged, so the Host header is the public name, ragchat.test."""

    def __init__(self, target_port: int, key: Path, cert: Path) -> None:
        self.port = free_port()
        self.target_port = target_port
        self.context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        self.context.load_cert_chain(cert, key)
        self.loop = asyncio.new_event_loop()
        self.ready = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()
        self.ready.wait(10)

    def _run(self) -> None:
        asyncio.set_event_loop(self.loop)

        async def pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            try:
                while data := await reader.read(65536):
                    writer.write(data)
                    await writer.drain()
            except (ConnectionError, OSError):
                pass
            finally:
                writer.close()

        async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            try:
                up_reader, up_writer = await asyncio.open_connection("127.0.0.1", self.target_port)
            except OSError:
                writer.close()
                return
            await asyncio.gather(pipe(reader, up_writer), pipe(up_reader, writer))

        async def main() -> None:
            self.stopped = asyncio.Event()
            server = await asyncio.start_server(handle, "127.0.0.1", self.port, ssl=self.context)
            self.ready.set()
            async with server:
                await self.stopped.wait()

        self.loop.run_until_complete(main())

    def close(self) -> None:
        self.loop.call_soon_threadsafe(self.stopped.set)
        self.thread.join(10)


ATTACK = """<!doctype html><html><body><script>
(async () => {
  const target = 'https://ragchat.test:%(port)d';
  const out = {};
  try {
    const r = await fetch(target + '/gradio_api/call/conversations', {
      method: 'POST', credentials: 'include',
      headers: {'Content-Type': 'application/json'}, body: '{"data": []}'});
    const {event_id} = await r.json();
    const s = await fetch(target + '/gradio_api/call/conversations/' + event_id,
                          {credentials: 'include'});
    out.conversations = await s.text();
  } catch (e) { out.conversations_error = String(e); }
  try {
    const r = await fetch(target + '/gradio_api/info', {credentials: 'include'});
    out.info = await r.text();
  } catch (e) { out.info_error = String(e); }
  document.title = 'done';
  document.body.dataset.result = JSON.stringify(out);
})();
</script></body></html>"""


class EvilSite:
    """https://evil.test: serves the attack page."""

    def __init__(self, page: str, key: Path, cert: Path) -> None:
        body = page.encode()

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                self.send_response(200)
                self.send_header("Content-Type", "text/html")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: Any) -> None:
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.load_cert_chain(cert, key)
        self.server.socket = context.wrap_socket(self.server.socket, server_side=True)
        self.port = self.server.server_address[1]
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()


@pytest.fixture(scope="module")
def proxied(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    folder = tmp_path_factory.mktemp("cors")
    users = f"alice:{hash_password('wonderland')}"
    (folder / "home").mkdir()
    server = launch(folder / "home", {"RAGCHAT_AUTH": users})
    key, cert = make_certificate(folder)
    proxy = TlsProxy(int(server.url.rsplit(":", 1)[1].strip("/")), key, cert)
    evil = EvilSite(ATTACK % {"port": proxy.port}, key, cert)
    yield {"server": server, "proxy": proxy, "evil": evil}
    evil.close()
    proxy.close()
    server.stop()


@pytest.fixture(scope="module")
def host_context(browser: Any, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    """A Chromium profile that resolves ragchat.test and evil.test to this machine, trusts the
    test's self-signed certificate and allows third-party cookies (the attack needed them; the
    profile's cookie_controls_mode 0 is the setting "allow third-party cookies")."""
    profile = tmp_path_factory.mktemp("profile")
    (profile / "Default").mkdir()
    prefs = {"profile": {"cookie_controls_mode": 0, "block_third_party_cookies": False}}
    (profile / "Default" / "Preferences").write_text(json.dumps(prefs), encoding="utf-8")
    args = [*CHROMIUM_ARGS,
            "--host-resolver-rules=MAP ragchat.test 127.0.0.1, MAP evil.test 127.0.0.1",
            "--ignore-certificate-errors"]  # fmt: skip
    context = browser.browser_type.launch_persistent_context(
        str(profile),
        executable_path=str(CHROMIUM),
        args=args,
        ignore_https_errors=True,
    )
    yield context
    context.close()


def test_a_page_on_another_site_cannot_read_alices_conversations(
    proxied: dict[str, Any], host_context: Any
) -> None:
    proxy, evil = proxied["proxy"], proxied["evil"]
    home = f"https://ragchat.test:{proxy.port}"
    context = host_context
    page = context.new_page()
    page.set_default_timeout(60_000)
    page.goto(home + "/")
    page.locator("input[type=text], input[name=username]").first.fill("alice")
    page.locator("input[type=password]").first.fill("wonderland")
    page.keyboard.press("Enter")
    expect(page.locator("#rc-transcript")).to_be_visible()
    # alice has a conversation with a title worth stealing
    asked = page.evaluate(
        """async (home) => {
          const r = await fetch(home + '/gradio_api/call/ask', {method: 'POST',
            headers: {'Content-Type': 'application/json'},
            body: JSON.stringify({data: ['Where is the secret Zanzibar vault?', 'hybrid', 5,
                                         'Short', 'extractive']})});
          const {event_id} = await r.json();
          return await (await fetch(home + '/gradio_api/call/ask/' + event_id)).text();
        }""",
        home,
    )
    assert "complete" in asked
    # from ragchat's own origin the same read works (the harness is sound)
    own = page.evaluate(
        """async (home) => {
          const r = await fetch(home + '/gradio_api/call/conversations', {method: 'POST',
            headers: {'Content-Type': 'application/json'}, body: '{"data": []}'});
          const {event_id} = await r.json();
          return await (await fetch(home + '/gradio_api/call/conversations/' + event_id)).text();
        }""",
        home,
    )
    assert "Zanzibar" in own
    cookies = context.cookies(home)
    assert cookies and all(c["sameSite"] == "Lax" for c in cookies), cookies
    attack = context.new_page()
    attack.goto(f"https://evil.test:{evil.port}/")
    attack.wait_for_function("document.title === 'done'", timeout=60_000)
    result = json.loads(attack.evaluate("document.body.dataset.result"))
    assert "Zanzibar" not in json.dumps(result), result
    assert "conversations_error" in result and "info_error" in result, result


# no "/": a document's name is the last path component of what was uploaded
NAME = '<a href="phish.html">Session expired - click here<img src="probe.png">.md'


def test_document_names_in_warnings_stay_text(server: RunningServer, open_page: Any) -> None:
    with httpx.Client(base_url=server.url, timeout=120) as http:
        body = b"# Quorvex\n\nThe Quorvex valve opens at 4 bar.\n"
        path = http.post("gradio_api/upload", files={"files": ("upload.md", body)}).json()[0]
        payload = {"path": path, "orig_name": NAME, "meta": {"_type": "gradio.FileData"}}
        call = http.post("gradio_api/call/upload", json={"data": [[payload]]})
        results = http.get(f"gradio_api/call/upload/{call.json()['event_id']}").text
    assert "added" in results, results
    rp = open_page()
    page = rp.page
    page.goto(server.url)
    page.get_by_role("tab", name="Knowledge base").click()
    pick = page.locator("#rc-doc-pick input")
    pick.fill("no such document at all")
    pick.press("Enter")
    page.locator("#rc-delete-doc").click()
    toast = page.locator(".toast-body, [data-testid='toast-body']").first
    expect(toast).to_contain_text("Session expired - click here", timeout=30_000)
    assert toast.locator("a, img").count() == 0
    assert "<img" in toast.inner_text()
    page.wait_for_timeout(1000)
    assert not [u for u in rp.requests if "probe.png" in u or "phish.html" in u], rp.requests


@pytest.fixture(scope="module")
def busy(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningServer]:
    """A server whose user has 60 conversations (quoted answers: no generator needed)."""
    home = tmp_path_factory.mktemp("busy")
    server = launch(home, {})
    with httpx.Client(base_url=server.url, timeout=120) as http:
        doc = b"# Vexel\n\nThe Vexel pump moves 40 litres of water per minute.\n"
        assert http.post("api/documents", files={"files": ("vexel.md", doc)}).status_code == 200
        for i in range(60):
            topic = "Turbine" if i % 10 == 0 else "Pump"
            body = {"question": f"{topic} question number {i}?", "answer_mode": "extractive"}
            assert http.post("api/ask", json=body).status_code == 200
    yield server
    server.stop()


def test_the_sidebar_pages_and_searches_conversations(busy: RunningServer, open_page: Any) -> None:
    page = open_page().page
    page.goto(busy.url)
    items = page.locator("#rc-history .rc-conv")
    expect(items).to_have_count(50)
    expect(items.first).to_contain_text("number 59")
    page.locator("#rc-history-more").click()
    expect(items).to_have_count(60)
    expect(page.locator("#rc-history-more")).to_have_count(0)
    search = page.locator("#rc-history-search input")
    search.press_sequentially("turbine")  # typed, as a person does
    expect(items).to_have_count(6)
    expect(items.first).to_contain_text("Turbine question number 50")
    search.press_sequentially(" no such title")
    expect(page.locator("#rc-history")).to_contain_text("No conversation title contains")
    search.press("Control+a")
    search.press("Backspace")
    expect(items).to_have_count(50)
