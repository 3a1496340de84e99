"""What routes receive: the services made in the lifespan, and the authenticated caller.

Every route that returns content takes `CallerDep` (or a `require(role)` dependency), which
authenticates the API key, applies the caller's rate limit, and hands the route the caller whose
`principal` filters retrieval. Keys come as `Authorization: Bearer <key>` or `X-API-Key`.
"""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

from fastapi import Depends, Request
from fastapi.security import APIKeyHeader, HTTPAuthorizationCredentials, HTTPBearer

from api.keys import Caller, KeyStore, Role
from api.metrics import Metrics
from api.ratelimit import RateLimiter
from api.uploads import Uploader
from assistant.audit import AuditLog
from assistant.conflicts import ConflictFinder
from assistant.gap_clusters import GapClusters
from assistant.kb_health import KBHealth
from assistant.projects import ProjectFinder
from assistant.querylog import Asker, QueryLog
from assistant.service import Answer, Assistant
from assistant.signoff import SignOff
from index.errors import AuthenticationError, PermissionDeniedError, RateLimitedError
from index.filelock import FileLock
from index.hybrid import HybridRetriever
from index.store import ChromaStore
from ingest.sync import Ingester

if TYPE_CHECKING:  # built by api/assembly.py when the service starts, like `kb eval` imports evals/
    from evals.suite_runs import EvalRuns

# how long the service's shutdown waits for an evaluation run to finish its current question
EVAL_SHUTDOWN_WAIT_S = 300.0

DEV_CALLER = Caller("dev", "local development (KB_AUTH=dev)", Role.ADMIN, ())


@dataclass
class Services:
    """Everything routes use, made from settings in the lifespan (api/assembly.py): routes
    get these objects and plain values, never the settings themselves."""

    store: ChromaStore
    retriever: HybridRetriever
    assistant: Assistant
    ingester: Ingester
    uploader: Uploader
    keys: KeyStore
    limiter: RateLimiter
    query_log: QueryLog
    metrics: Metrics
    corpus_dir: Path  # what `POST /v1/sync` re-syncs (KB_CORPUS_DIR)
    today: Callable[[], dt.date]  # for review dates (KB_TODAY, or the real today)
    dev_auth: bool  # KB_AUTH=dev: no keys, every request acts as an admin
    audit: AuditLog  # who changed what: reviews, uploads, syncs (assistant/audit.py)
    signoff: SignOff  # marks documents reviewed (assistant/signoff.py)
    projects: ProjectFinder  # similar projects of other departments (assistant/projects.py)
    health: KBHealth  # knowledge-base health for the CoE (assistant/kb_health.py)
    conflicts: ConflictFinder  # supersession and conflict report (assistant/conflicts.py)
    gap_clusters: GapClusters  # the gap report by topic (assistant/gap_clusters.py)
    eval_runs: EvalRuns  # evaluation runs started over HTTP (evals/suite_runs.py)
    ingest_lock: FileLock  # one ingest at a time, across processes (KB_DATA_DIR/ingest.lock)

    def record_answer(self, answer: Answer, caller: Caller, route: str, started: float) -> None:
        """Log an answer served over HTTP (query log and metrics); `started` is a
        `time.perf_counter()` reading from when the request began."""
        asker = Asker(caller.key_id, caller.groups, caller.role is Role.ADMIN)
        latency_ms = (time.perf_counter() - started) * 1000
        self.query_log.record(answer, asker, route=route, latency_ms=latency_ms)
        self.metrics.observe_answer(answer)

    def close(self) -> None:
        self.eval_runs.close(EVAL_SHUTDOWN_WAIT_S)
        self.keys.close()
        self.query_log.close()


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
    if services.dev_auth:
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
