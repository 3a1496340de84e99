"""What routes receive: the services made in the lifespan, and the authenticated caller.

Every route that returns content takes `CallerDep` (or a `require(role)` dependency), which
authenticates the API key, applies the caller's rate limit, and hands the route the caller whose
`principal` filters retrieval. Keys come as `Authorization: Bearer <key>` or `X-API-Key`.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Annotated

from fastapi import Depends, Request
from fastapi.security import APIKeyHeader, HTTPAuthorizationCredentials, HTTPBearer

from api.keys import Caller, KeyStore, Role
from api.ratelimit import RateLimiter
from api.settings import Settings
from assistant.service import Assistant
from index.errors import AuthenticationError, PermissionDeniedError, RateLimitedError
from index.hybrid import HybridRetriever
from index.store import ChromaStore
from ingest.sync import Ingester

DEV_CALLER = Caller("dev", "local development (KB_AUTH=dev)", Role.ADMIN, ())


@dataclass
class Services:
    settings: Settings
    store: ChromaStore
    retriever: HybridRetriever
    assistant: Assistant
    ingester: Ingester
    keys: KeyStore
    limiter: RateLimiter
    ingest_lock: threading.Lock = field(default_factory=threading.Lock)


def get_services(request: Request) -> Services:
    services: Services = request.app.state.services
    return services


ServicesDep = Annotated[Services, Depends(get_services)]

_bearer = HTTPBearer(auto_error=False, description="An API key from `kb keys create`.")
_header = APIKeyHeader(
    name="X-API-Key", auto_error=False, description="The same key, for clients without Bearer."
)


def get_caller(
    request: Request,
    services: ServicesDep,
    bearer: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
    header: Annotated[str | None, Depends(_header)],
) -> Caller:
    if services.settings.auth == "dev":
        caller = DEV_CALLER
        bucket = f"dev:{request.client.host if request.client else '-'}"
    else:
        key = bearer.credentials if bearer else header
        if not key:
            raise AuthenticationError(
                "no API key: send 'Authorization: Bearer <key>' (create one with `kb keys create`)"
            )
        found = services.keys.authenticate(key)
        if found is None:
            raise AuthenticationError("the API key is unknown or revoked: see `kb keys list`")
        caller, bucket = found, found.key_id
    wait = services.limiter.acquire(bucket)
    if wait > 0:
        raise RateLimitedError(
            f"key '{caller.key_id}' is over {services.limiter.per_minute} requests a minute: "
            f"retry in {wait:.1f} s",
            wait,
        )
    request.state.caller = caller  # for the query log and metrics
    return caller


CallerDep = Annotated[Caller, Depends(get_caller)]


def require(role: Role) -> Callable[[Caller], Caller]:
    """A dependency: the caller, if its role may do what `role` may; else 403."""

    def check(caller: CallerDep) -> Caller:
        if not caller.role.allows(role):
            raise PermissionDeniedError(
                f"this needs the '{role.value}' role; key '{caller.key_id}' has "
                f"'{caller.role.value}'"
            )
        return caller

    return check


SpokeDep = Annotated[Caller, Depends(require(Role.SPOKE))]
AdminDep = Annotated[Caller, Depends(require(Role.ADMIN))]
