"""Who may see what, and which documents a query may draw from, as one Chroma `where` clause.

The same clause object drives both retrieval paths: Chroma evaluates it inside the dense query,
and `matches()` evaluates it on chunk metadata for the keyword index, so the two paths can
never disagree about what is allowed. Access control is a clause like any other filter: a chunk
outside the principal's groups is never a candidate, so it is never ranked, counted or returned.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from index.errors import InvalidRequestError
from index.records import EVERYONE, DocType, Status

Where = dict[str, Any]


@dataclass(frozen=True)
class Principal:
    """Who is asking: their groups, or an administrator who sees everything."""

    groups: frozenset[str] = frozenset()
    admin: bool = False

    @classmethod
    def of(cls, *groups: str, admin: bool = False) -> Principal:
        return cls(frozenset(g.strip().lower() for g in groups if g.strip()), admin)


ANONYMOUS = Principal()
ADMIN = Principal(admin=True)


def _tuple(value: str | Iterable[str] | None) -> tuple[str, ...]:
    if value is None:
        return ()
    if isinstance(value, str):
        return (value,)
    return tuple(value)


@dataclass(frozen=True)
class SearchFilters:
    """Restrictions on which documents a search draws from. Lists mean "any of"."""

    departments: tuple[str, ...] = ()
    exclude_departments: tuple[str, ...] = ()  # none of these (similar projects: other ones)
    doc_types: tuple[str, ...] = ()
    statuses: tuple[str, ...] = ()
    tags: tuple[str, ...] = ()
    owner: str | None = None
    vendor: str | None = None
    year: int | None = None
    reviewed_from: dt.date | None = None  # last_reviewed on or after
    reviewed_to: dt.date | None = None  # last_reviewed on or before
    stale: bool | None = None  # True: only past review date; False: only current
    include_superseded: bool = False  # superseded and retired documents are out by default
    doc_ids: tuple[str, ...] = field(default=())

    @classmethod
    def build(
        cls,
        *,
        department: str | Iterable[str] | None = None,
        exclude_department: str | Iterable[str] | None = None,
        doc_type: str | Iterable[str] | None = None,
        status: str | Iterable[str] | None = None,
        tags: str | Iterable[str] | None = None,
        **rest: Any,
    ) -> SearchFilters:
        return cls(
            departments=_tuple(department),
            exclude_departments=_tuple(exclude_department),
            doc_types=_tuple(doc_type),
            statuses=_tuple(status),
            tags=_tuple(tags),
            **rest,
        )

    def validate(self) -> None:
        _check_values("doc_type", self.doc_types, {t.value for t in DocType})
        _check_values("status", self.statuses, {s.value for s in Status})
        if self.reviewed_from and self.reviewed_to and self.reviewed_from > self.reviewed_to:
            raise InvalidRequestError("reviewed_from", "is after reviewed_to: swap them")


def _check_values(name: str, values: tuple[str, ...], allowed: set[str]) -> None:
    for value in values:
        if value not in allowed:
            raise InvalidRequestError(
                name, f"'{value}' is not allowed; use one of {', '.join(sorted(allowed))}"
            )


def _any_of(key: str, values: tuple[str, ...]) -> Where:
    return {key: values[0]} if len(values) == 1 else {key: {"$in": list(values)}}


def access_clause(principal: Principal) -> Where | None:
    if principal.admin:
        return None
    groups = sorted(principal.groups | {EVERYONE})
    ors: list[Where] = [{"access": {"$contains": g}} for g in groups]
    return ors[0] if len(ors) == 1 else {"$or": ors}


def build_where(filters: SearchFilters, principal: Principal, today: dt.date) -> Where | None:
    """The one clause that every retrieval path applies."""
    filters.validate()
    clauses: list[Where] = []
    acl = access_clause(principal)
    if acl:
        clauses.append(acl)
    if filters.departments:
        clauses.append(_any_of("department", filters.departments))
    if filters.exclude_departments:
        clauses.append({"department": {"$nin": list(filters.exclude_departments)}})
    if filters.doc_types:
        clauses.append(_any_of("doc_type", filters.doc_types))
    if filters.statuses:
        clauses.append(_any_of("status", filters.statuses))
    elif not filters.include_superseded:
        clauses.append({"status": {"$nin": [Status.SUPERSEDED.value, Status.RETIRED.value]}})
    if filters.tags:
        ors: list[Where] = [{"tags": {"$contains": t}} for t in filters.tags]
        clauses.append(ors[0] if len(ors) == 1 else {"$or": ors})
    for key in ("owner", "vendor", "year"):
        value = getattr(filters, key)
        if value is not None:
            clauses.append({key: value})
    if filters.reviewed_from:
        clauses.append({"last_reviewed_day": {"$gte": filters.reviewed_from.toordinal()}})
    if filters.reviewed_to:
        clauses.append({"last_reviewed_day": {"$lte": filters.reviewed_to.toordinal()}})
    if filters.stale is not None:
        op = "$lt" if filters.stale else "$gte"
        clauses.append({"review_date_day": {op: today.toordinal()}})
    if filters.doc_ids:
        clauses.append(_any_of("doc_id", filters.doc_ids))
    if not clauses:
        return None
    return clauses[0] if len(clauses) == 1 else {"$and": clauses}


_MISSING = object()


def matches(where: Where | None, metadata: dict[str, Any]) -> bool:
    """Chroma's semantics for the operators `build_where` emits, on one metadata dict.
    A comparison on a missing key is false (as in Chroma), except `$ne`/`$nin`."""
    if not where:
        return True
    for key, condition in where.items():
        if key == "$and":
            if not all(matches(c, metadata) for c in condition):
                return False
        elif key == "$or":
            if not any(matches(c, metadata) for c in condition):
                return False
        elif not _compare(metadata.get(key, _MISSING), condition):
            return False
    return True


def _compare(value: Any, condition: Any) -> bool:
    if not isinstance(condition, dict):
        condition = {"$eq": condition}
    ((op, target),) = condition.items()
    if value is _MISSING:
        return op in {"$ne", "$nin"}
    if op == "$eq":
        return bool(value == target)
    if op == "$ne":
        return bool(value != target)
    if op == "$in":
        return value in target
    if op == "$nin":
        return value not in target
    if op == "$contains":
        return isinstance(value, list) and target in value
    if op == "$gt":
        return bool(value > target)
    if op == "$gte":
        return bool(value >= target)
    if op == "$lt":
        return bool(value < target)
    if op == "$lte":
        return bool(value <= target)
    raise ValueError(f"operator {op} is not supported by matches()")
