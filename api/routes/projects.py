"""Prior projects: the lessons learned, showcases and vendor evaluations of other departments
closest to a project (assistant/projects.py)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query

from api.deps import CallerDep, ServicesDep
from api.schemas import SimilarProjectsOut, SimilarProjectsQuery

router = APIRouter(tags=["projects"])


@router.get("/v1/projects/similar", response_model=SimilarProjectsOut)
def similar_projects(
    params: Annotated[SimilarProjectsQuery, Query()],
    services: ServicesDep,
    caller: CallerDep,
) -> SimilarProjectsOut:
    """The lessons learned, showcases and vendor evaluations closest to a project, described
    in words (`q`) or given as a document (`doc_id`: the document itself, and by default its
    department, are left out; `note` says so). One entry per document, ranked by its best
    chunk's similarity, with its main lesson and review status; only documents the caller may
    read are ever candidates."""
    found = services.projects.similar(params.to_query(), caller.principal)
    return SimilarProjectsOut.model_validate(found)
