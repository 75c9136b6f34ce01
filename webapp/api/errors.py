"""Errors as the API answers them: `{"detail": ...}` under /api, OpenAI's error object under /v1,
and the error responses every route documents."""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI, HTTPException, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response

from rag_core.errors import UserError
from webapp.api.schemas import ErrorOut

ERRORS: dict[int | str, dict[str, Any]] = {
    401: {"model": ErrorOut, "description": "no valid API key (accounts on)"},
    403: {"model": ErrorOut, "description": "not yours to change (accounts on)"},
    404: {"model": ErrorOut, "description": "no such id (or another user's)"},
}


def not_found(exc: UserError) -> HTTPException:
    return HTTPException(404, str(exc))


def unprocessable(exc: UserError) -> HTTPException:
    return HTTPException(422, str(exc))


def _openai_error(status: int, message: str, kind: str) -> JSONResponse:
    body = {"error": {"message": message, "type": kind, "param": None, "code": status}}
    return JSONResponse(body, status_code=status)


def _is_openai(request: Request) -> bool:
    return request.url.path.startswith("/v1/")


async def http_error(request: Request, exc: HTTPException) -> Response:
    if _is_openai(request):
        kind = "authentication_error" if exc.status_code == 401 else "invalid_request_error"
        response = _openai_error(exc.status_code, str(exc.detail), kind)
    else:
        response = JSONResponse({"detail": exc.detail}, status_code=exc.status_code)
    for k, v in (exc.headers or {}).items():
        response.headers[k] = v
    return response


def _problem(error: Any) -> str:
    where = ".".join(str(p) for p in error.get("loc", ()) if p != "body") or "body"
    return f"{where}: {error.get('msg', 'invalid')}"


async def invalid_request(request: Request, exc: RequestValidationError) -> Response:
    problems = "; ".join(_problem(e) for e in exc.errors())
    if _is_openai(request):
        return _openai_error(400, problems, "invalid_request_error")
    return JSONResponse({"detail": problems}, status_code=422)


def install(app: FastAPI) -> None:
    """Answer errors in the shape of the API that was called."""
    app.add_exception_handler(HTTPException, http_error)  # type: ignore[arg-type]
    app.add_exception_handler(RequestValidationError, invalid_request)  # type: ignore[arg-type]
