"""A collection that is gone (deleted, or renamed by a repair's swap) is told apart from every
other error by the type Chroma raises, embedded and through a `chroma run` server alike; an
error that only says "does not exist" in its text is not taken for it."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from typing import Any

import pytest

from index.collections import find, is_gone
from index.store import ChromaServer, ChromaStore
from tests.test_server_mode import server  # noqa: F401  (the `chroma run` fixture, reused)

VECTOR = [[0.6, 0.8]]

OPERATIONS: dict[str, Callable[[Any], object]] = {
    "count": lambda c: c.count(),
    "get": lambda c: c.get(ids=["1"]),
    "query": lambda c: c.query(query_embeddings=VECTOR, n_results=1),
    "upsert": lambda c: c.upsert(ids=["2"], embeddings=VECTOR),
    "delete": lambda c: c.delete(ids=["1"]),
    "rename": lambda c: c.modify(name=f"renamed_{uuid.uuid4().hex[:8]}"),
}


@pytest.fixture(params=["embedded", "server"])
def client(request: pytest.FixtureRequest, chroma_client: Any) -> Any:
    if request.param == "embedded":
        return chroma_client
    port = request.getfixturevalue("server")
    return ChromaStore.open(path=None, server=ChromaServer("127.0.0.1", port)).client


def _gone_handle(client: Any) -> Any:
    name = f"gone_{uuid.uuid4().hex[:8]}"
    collection = client.create_collection(name, embedding_function=None)
    collection.add(ids=["1"], embeddings=VECTOR)
    client.delete_collection(name)
    return collection


@pytest.mark.parametrize("operation", OPERATIONS)
def test_an_operation_on_a_deleted_collection_is_gone(client: Any, operation: str) -> None:
    with pytest.raises(Exception) as caught:  # noqa: PT011 - the type is what is under test
        OPERATIONS[operation](_gone_handle(client))
    assert is_gone(caught.value), repr(caught.value)


def test_a_missing_name_is_not_found(client: Any) -> None:
    assert find(client, f"never_{uuid.uuid4().hex[:8]}") is None
    with pytest.raises(Exception) as caught:  # noqa: PT011
        client.delete_collection(f"never_{uuid.uuid4().hex[:8]}")
    assert is_gone(caught.value)


class _Failing:
    """A client whose lookups fail with an error that is not Chroma's NotFoundError."""

    def get_collection(self, name: str, embedding_function: Any = None) -> Any:
        raise ValueError(f"the index of {name} does not exist on this disk")


def test_other_errors_are_not_taken_for_a_missing_collection() -> None:
    assert not is_gone(ValueError("Collection kb_chunks does not exist."))
    with pytest.raises(ValueError, match="does not exist"):
        find(_Failing(), "kb_chunks")  # raised, not "no such collection"
