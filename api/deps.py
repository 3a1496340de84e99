"""What routes receive: the services made in the lifespan, and the caller's principal."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, Request

from api.settings import Settings
from assistant.service import Assistant
from index.filters import ANONYMOUS, Principal
from index.hybrid import HybridRetriever
from index.store import ChromaStore


@dataclass
class Services:
    settings: Settings
    store: ChromaStore
    retriever: HybridRetriever
    assistant: Assistant


def get_services(request: Request) -> Services:
    services: Services = request.app.state.services
    return services


def get_principal() -> Principal:
    """Until API keys map requests to principals, every request reads as a principal with no
    groups: documents open to `all` only (the safe default)."""
    return ANONYMOUS


ServicesDep = Annotated[Services, Depends(get_services)]
PrincipalDep = Annotated[Principal, Depends(get_principal)]
