"""Bearer-token protection for the service's write endpoints."""

from __future__ import annotations

import hmac
from collections.abc import Callable

from fastapi import Header, HTTPException


def require_token(token: str | None) -> Callable[[str | None], None]:
    """A FastAPI dependency that checks ``Authorization: Bearer <token>``.

    With ``token=None`` writes are refused altogether (403): a service must be given a token
    to accept writes, so a forgotten setting never leaves it open.
    """

    def check(authorization: str | None = Header(None)) -> None:
        if token is None:
            raise HTTPException(403, "write endpoints are disabled: no API token configured")
        if authorization is None or not authorization.startswith("Bearer "):
            raise HTTPException(401, "missing bearer token",
                                headers={"WWW-Authenticate": "Bearer"})
        if not hmac.compare_digest(authorization.removeprefix("Bearer ").encode(),
                                   token.encode()):
            raise HTTPException(401, "invalid bearer token",
                                headers={"WWW-Authenticate": "Bearer"})

    return check
