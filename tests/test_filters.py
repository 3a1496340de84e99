"""One `where` clause, two evaluators: Chroma's (dense path) and `matches` (keyword path).
They must agree on every record for every filter and principal, or the keyword path could
return what the dense path would not."""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from index.errors import InvalidRequestError
from index.filters import ADMIN, Principal, SearchFilters, build_where, matches

TODAY = dt.date(2026, 11, 28)
DEPARTMENTS = ["coe", "finance", "legal", "hr"]
GROUPS = ["all", "coe", "finance", "legal", "hr"]
TYPES = ["playbook", "faq", "policy"]
STATUSES = ["draft", "approved", "superseded", "retired"]

_record = st.fixed_dictionaries(
    {
        "doc_id": st.sampled_from(["a", "b", "c", "d"]),
        "department": st.sampled_from(DEPARTMENTS),
        "doc_type": st.sampled_from(TYPES),
        "status": st.sampled_from(STATUSES),
        "access": st.lists(st.sampled_from(GROUPS), min_size=1, max_size=3, unique=True),
        "owner": st.sampled_from(["Priya", "Rosa"]),
        "review_date_day": st.integers(TODAY.toordinal() - 400, TODAY.toordinal() + 400),
        "last_reviewed_day": st.integers(TODAY.toordinal() - 800, TODAY.toordinal()),
    },
    optional={
        "tags": st.lists(st.sampled_from(["ocr", "llm", "bot"]), min_size=1, unique=True),
        "vendor": st.sampled_from(["DocuSift", "ClauseWise"]),
        "year": st.sampled_from([2024, 2025]),
    },
)

_filters = st.builds(
    SearchFilters.build,
    department=st.one_of(st.none(), st.lists(st.sampled_from(DEPARTMENTS), max_size=2)),
    exclude_department=st.one_of(st.none(), st.lists(st.sampled_from(DEPARTMENTS), max_size=2)),
    doc_type=st.one_of(st.none(), st.sampled_from(TYPES)),
    status=st.one_of(st.none(), st.lists(st.sampled_from(STATUSES), max_size=2)),
    tags=st.one_of(st.none(), st.lists(st.sampled_from(["ocr", "llm"]), max_size=2)),
    owner=st.one_of(st.none(), st.just("Rosa")),
    vendor=st.one_of(st.none(), st.just("DocuSift")),
    year=st.one_of(st.none(), st.just(2025)),
    stale=st.one_of(st.none(), st.booleans()),
    include_superseded=st.booleans(),
    reviewed_from=st.one_of(st.none(), st.just(TODAY - dt.timedelta(days=300))),
)

_principal = st.one_of(
    st.just(ADMIN),
    st.builds(lambda g: Principal.of(*g), st.lists(st.sampled_from(GROUPS[1:]), max_size=2)),
)


@settings(max_examples=120, deadline=None)
@given(
    records=st.lists(_record, min_size=1, max_size=30),
    filters=_filters,
    principal=_principal,
)
def test_python_evaluator_agrees_with_chroma(
    chroma_client: Any,
    records: list[dict[str, Any]],
    filters: SearchFilters,
    principal: Principal,
) -> None:
    name = f"f_{uuid.uuid4().hex[:12]}"
    collection = chroma_client.create_collection(name)  # left in place: see drop_store
    ids = [f"{name}-{i}" for i in range(len(records))]
    collection.add(
        ids=ids, embeddings=[[1.0, float(i)] for i in range(len(ids))], metadatas=records
    )
    where = build_where(filters, principal, TODAY)
    by_chroma = set(collection.get(where=where)["ids"]) if where else set(ids)
    by_python = {i for i, md in zip(ids, records, strict=True) if matches(where, md)}
    assert by_python == by_chroma, where


def test_access_clause_always_admits_everyone_documents() -> None:
    where = build_where(SearchFilters(), Principal.of("finance"), TODAY)
    assert matches(where, {"access": ["all"], "status": "approved"})
    assert matches(where, {"access": ["finance", "legal"], "status": "approved"})
    assert not matches(where, {"access": ["legal"], "status": "approved"})
    assert not matches(where, {"access": ["all"], "status": "superseded"})


def test_admin_sees_everything_not_superseded_by_default() -> None:
    assert build_where(SearchFilters(), ADMIN, TODAY) == {
        "status": {"$nin": ["superseded", "retired"]}
    }
    assert build_where(SearchFilters(include_superseded=True), ADMIN, TODAY) is None


@pytest.mark.parametrize(
    ("filters", "parameter"),
    [
        (SearchFilters.build(doc_type="memo"), "doc_type"),
        (SearchFilters.build(status="live"), "status"),
        (
            SearchFilters(reviewed_from=TODAY, reviewed_to=TODAY - dt.timedelta(days=1)),
            "reviewed_from",
        ),
    ],
)
def test_bad_filters_name_the_parameter(filters: SearchFilters, parameter: str) -> None:
    with pytest.raises(InvalidRequestError) as caught:
        build_where(filters, ADMIN, TODAY)
    assert caught.value.parameter == parameter
