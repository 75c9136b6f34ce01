"""webapp/api/deps.py: the caller and the actor, with accounts off and on."""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from fastapi import HTTPException
from fastapi.security import HTTPAuthorizationCredentials

from rag_core.ingest.pipeline import OPERATOR
from rag_core.types import Actor
from tests.unit.test_api import make_engine
from webapp.api.deps import ApiState, api_state, current_actor, current_user
from webapp.auth import LOCAL_USER


def run(coroutine: Coroutine[Any, Any, Any]) -> Any:
    """Await `coroutine` on a loop of its own: a browser test earlier in the session may hold a
    running loop on this thread, where `asyncio.run` refuses to start."""
    with ThreadPoolExecutor(1) as pool:
        return pool.submit(asyncio.run, coroutine).result()


def bearer(key: str) -> HTTPAuthorizationCredentials:
    return HTTPAuthorizationCredentials(scheme="Bearer", credentials=key)


def test_without_accounts_everyone_is_the_local_user_and_the_operator(tmp_path: Path) -> None:
    engine = make_engine(tmp_path)
    state = ApiState.create(engine, engine.settings, None)
    assert not state.accounts
    assert current_user(state, None) == LOCAL_USER
    assert current_user(state, bearer("rck_anything")) == LOCAL_USER
    assert run(current_actor(state, LOCAL_USER)) == OPERATOR
    request: Any = SimpleNamespace(app=SimpleNamespace(state=SimpleNamespace(ragchat=state)))
    assert run(api_state(request)) is state  # what create_app put on app.state


def test_with_accounts_the_key_names_the_user(tmp_path: Path) -> None:
    engine = make_engine(tmp_path)
    settings = engine.settings.model_copy(update={"admins": "carol"})
    state = ApiState.create(engine, settings, {"alice": "hash", "carol": "hash"})
    keys = {u: state.keys.create(u, "test")[1] for u in ("alice", "carol", "dave")}
    assert state.accounts
    assert current_user(state, bearer(keys["alice"])) == "alice"
    for credentials in (None, bearer("rck_wrong"), bearer(keys["dave"])):  # dave: no account
        with pytest.raises(HTTPException) as refused:
            current_user(state, credentials)
        assert refused.value.status_code == 401
        assert refused.value.headers == {"WWW-Authenticate": "Bearer"}
        assert "apikey create" in str(refused.value.detail)
    assert run(current_actor(state, "alice")) == Actor("alice", admin=False)
    assert run(current_actor(state, "carol")) == Actor("carol", admin=True)
