"""Bearer-token protection for the service's write endpoints, through FastAPI's
:class:`~fastapi.security.HTTPBearer`: the OpenAPI schema declares the ``bearerAuth`` security
scheme, so Swagger UI shows *Authorize* and clients generated from the schema send the token.

The hardening guard (:mod:`keel.app.guard`) still runs first - hosts, body limits and, when
bound beyond localhost, the token before any body is parsed; this dependency is what the
schema documents and what checks the token on every write.
"""

from __future__ import annotations

import hmac
from collections.abc import Callable

from fastapi import HTTPException, Security
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

#: the name of the security scheme in the OpenAPI document
SCHEME_NAME = "bearerAuth"

#: the scheme itself; ``auto_error=False`` so keel answers 401 with its own messages
bearer = HTTPBearer(scheme_name=SCHEME_NAME, auto_error=False,
                    description="The API token of `keel serve` (--token-file or "
                                "KEEL_SERVICE__API_TOKEN): `Authorization: Bearer <token>`.")


def require_token(token: str | None) -> Callable[[HTTPAuthorizationCredentials | None], None]:
    """A FastAPI dependency that checks ``Authorization: Bearer <token>``.

    With ``token=None`` writes are refused altogether (403): a service must be given a token
    to accept writes, so a forgotten setting never leaves it open.
    """

    def check(credentials: HTTPAuthorizationCredentials | None = Security(bearer)) -> None:
        if token is None:
            raise HTTPException(403, "write endpoints are disabled: no API token configured")
        if credentials is None or credentials.scheme.lower() != "bearer":
            raise HTTPException(401, "missing bearer token",
                                headers={"WWW-Authenticate": "Bearer"})
        if not hmac.compare_digest(credentials.credentials.encode(), token.encode()):
            raise HTTPException(401, "invalid bearer token",
                                headers={"WWW-Authenticate": "Bearer"})

    return check
