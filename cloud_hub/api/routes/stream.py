"""GET /api/v1/stream: alert transitions and status changes as server-sent events."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from typing import Annotated

import orjson
from fastapi import APIRouter, Header, Request
from fastapi.responses import StreamingResponse
from sqlalchemy.orm import Session, sessionmaker

from cloud_hub.api.deps import CurrentUser, SessionDep
from cloud_hub.auth.scope import Scope
from cloud_hub.db import feed
from cloud_hub.db.feed import Cursor, FeedItem

router = APIRouter(prefix="/api/v1", tags=["stream"])

POLL_S = 0.5
KEEPALIVE_S = 15.0


@router.get(
    "/stream",
    response_class=StreamingResponse,
    responses={200: {"content": {"text/event-stream": {}}}},
)
async def stream(
    request: Request,
    session: SessionDep,
    user: CurrentUser,
    last_event_id: Annotated[str | None, Header(max_length=64)] = None,
) -> StreamingResponse:
    """Server-sent events in your scope, ``data`` a JSON object whose ``kind`` is ``alert`` for
    every alert transition (raise, clear, acknowledge, resolve, escalate) or ``status`` for a
    gateway or device going online or offline. Each event's ``id`` is a cursor: reconnect with it
    in ``Last-Event-ID`` to receive what happened meanwhile."""
    session.close()  # the caller is known: hold no connection for as long as the stream lasts
    sessions: sessionmaker[Session] = request.app.state.sessions
    start = Cursor.parse(last_event_id)
    return StreamingResponse(
        _events(request, sessions, user.scope, start),
        media_type="text/event-stream",
        headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
    )


async def _events(
    request: Request, sessions: sessionmaker[Session], scope: Scope, start: Cursor | None
) -> AsyncIterator[bytes]:
    cursor = start if start is not None else await asyncio.to_thread(_now, sessions)
    yield b"retry: 3000\n: stream open\n\n"
    quiet_since = time.monotonic()
    while not await request.is_disconnected():
        items, cursor = await asyncio.to_thread(_read, sessions, cursor, scope)
        for item in items:
            yield _format(item)
        if items:
            quiet_since = time.monotonic()
        elif time.monotonic() - quiet_since >= KEEPALIVE_S:
            quiet_since = time.monotonic()
            yield b": keepalive\n\n"
        await asyncio.sleep(POLL_S)


def _now(sessions: sessionmaker[Session]) -> Cursor:
    with sessions() as session:
        return feed.cursor_now(session)


def _read(
    sessions: sessionmaker[Session], cursor: Cursor, scope: Scope
) -> tuple[list[FeedItem], Cursor]:
    with sessions() as session:
        return feed.read_since(session, cursor=cursor, scope=scope)


def _format(item: FeedItem) -> bytes:
    """One unnamed event (a browser's ``EventSource.onmessage`` receives it); its kind is in the
    data, so one handler sees alerts and status changes alike."""
    data = orjson.dumps({"kind": item.kind, **item.data})
    return f"id: {item.cursor}\ndata: ".encode() + data + b"\n\n"
