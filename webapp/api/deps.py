"""What the routes get injected with `Depends`: the engine, the settings, the caller, the actor,
and the locks and thread limits the routes share. create_app puts one `ApiState` on
`app.state.ragchat`; everything here reads it from the request, so no route closes over it.

The getters are `async def` on purpose: FastAPI runs a plain `def` dependency in its worker
threads, and /healthz must answer even when every one of those is busy.
"""

from __future__ import annotations

import threading
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Annotated

import anyio
from fastapi import Depends, HTTPException, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from rag_core.config import Settings
from rag_core.db.apikeys import ApiKeys
from rag_core.engine import Engine
from rag_core.ingest.pipeline import OPERATOR
from rag_core.types import Actor
from webapp.auth import LOCAL_USER

ANSWER_THREADS = 100  # answers in progress or waiting for the generator, per server
HEALTH_THREADS = 2


@dataclass(frozen=True)
class ApiState:
    """What the API shares across requests, set once by create_app."""

    engine: Engine
    settings: Settings
    keys: ApiKeys
    users: dict[str, str] | None  # None: accounts off
    # Answers wait for the generator in threads of their own, so that requests queued behind
    # it never hold the threads every other endpoint (and the health check) runs in.
    answer_limiter: anyio.CapacityLimiter = field(
        default_factory=lambda: anyio.CapacityLimiter(ANSWER_THREADS)
    )
    health_limiter: anyio.CapacityLimiter = field(
        default_factory=lambda: anyio.CapacityLimiter(HEALTH_THREADS)
    )
    ingest_lock: threading.Lock = field(default_factory=threading.Lock)  # one upload at a time

    @classmethod
    def create(
        cls, engine: Engine, settings: Settings, users: Mapping[str, str] | None
    ) -> ApiState:
        accounts = dict(users) if users is not None else None
        return cls(engine, settings, ApiKeys(engine.log.db), accounts)

    @property
    def accounts(self) -> bool:
        return self.users is not None


async def api_state(request: Request) -> ApiState:
    state: ApiState = request.app.state.ragchat
    return state


State = Annotated[ApiState, Depends(api_state)]


async def get_engine(state: State) -> Engine:
    return state.engine


async def get_settings(state: State) -> Settings:
    return state.settings


async def answer_limiter(state: State) -> anyio.CapacityLimiter:
    """The threads answers run in (see ApiState)."""
    return state.answer_limiter


async def ingest_lock(state: State) -> threading.Lock:
    """Held while documents are added or removed: one change at a time, as in the UI."""
    return state.ingest_lock


_bearer = HTTPBearer(
    auto_error=False,
    description="a per-user API key (`ragchat apikey create --user NAME`); "
    "needed only when accounts are on",
)


def current_user(
    state: State,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> str:
    """The caller: the key's owner with accounts on (401 without a valid key), else 'local'."""
    if state.users is None:
        return LOCAL_USER
    user = state.keys.authenticate(credentials.credentials) if credentials else None
    if user is None or user not in state.users:
        raise HTTPException(
            401,
            "A valid API key is required: send 'Authorization: Bearer KEY' (create a key "
            "with `ragchat apikey create --user NAME`).",
            headers={"WWW-Authenticate": "Bearer"},
        )
    return user


User = Annotated[str, Depends(current_user)]


async def current_actor(state: State, user: User) -> Actor:
    """Who changes the knowledge base: the key's user with accounts, else the operator."""
    if state.users is None:
        return OPERATOR
    return Actor(user, admin=user in state.settings.admin_users)


EngineDep = Annotated[Engine, Depends(get_engine)]
SettingsDep = Annotated[Settings, Depends(get_settings)]
ActorDep = Annotated[Actor, Depends(current_actor)]
AnswerLimiter = Annotated[anyio.CapacityLimiter, Depends(answer_limiter)]
IngestLock = Annotated[threading.Lock, Depends(ingest_lock)]
