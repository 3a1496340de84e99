"""Chroma collections by name, and the crash-safe swap that puts a rebuilt copy in place.

A collection is rebuilt (index/integrity.py) by copying every record into a new collection,
then swapping names. Chroma cannot rename onto a name in use, so the swap takes two renames,
and every state between the steps must open as a complete store. The protocol, for a live
collection `L` (say `kb_chunks`):

1. create `L__rebuild`, its metadata marked `kb_rebuild=copying` and `kb_rebuilt_from=<id of L>`;
   copy every record into it; verify the copy;
2. mark it `kb_rebuild=verified`;
3. rename `L` to `L__retired`;                  (no `L` until step 4)
4. rename `L__rebuild` to `L`;
5. finish: drop the `kb_rebuild` mark, write a new generation token (readers notice);
6. delete `L__retired`.

`settle()` runs wherever a collection is opened, and brings an interrupted swap to a complete
state: no `L` but a verified copy -> step 4 onwards (roll forward); no `L` and no verified copy
-> rename `L__retired` back (roll back); an `L` still marked -> step 5 onwards; an `L__retired`
that `L` names as its source (`kb_rebuilt_from`) -> step 6. So whatever step a process dies
at, the next open finds either the old or the new collection, complete. A copy that never got
to step 2 is left for the next repair to delete (it may be a repair running right now in
another process); it costs disk only, and `kb store check` reports it.

Each step tolerates another process having done it first (two processes may settle at once).
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from typing import Any

GENERATION_KEY = "kb_generation"
REBUILD_KEY = "kb_rebuild"  # "copying" | "verified", on a copy until the swap is finished
REBUILT_FROM_KEY = "kb_rebuilt_from"  # id of the collection a rebuilt one replaced; kept
COPYING = "copying"
VERIFIED = "verified"

Step = Callable[[str], None]


def rebuild_name(name: str) -> str:
    return f"{name}__rebuild"


def retired_name(name: str) -> str:
    return f"{name}__retired"


def is_gone(exc: BaseException) -> bool:
    """Whether a Chroma error says the collection no longer exists (deleted or renamed): its
    `NotFoundError`, which the embedded client and a `chroma run` server's both raise for a
    name or a handle that is gone (tests/test_integrity.py)."""
    from chromadb.errors import NotFoundError

    return isinstance(exc, NotFoundError)


def find(client: Any, name: str) -> Any | None:
    """The collection now called `name`, or None."""
    try:
        return client.get_collection(name, embedding_function=None)
    except Exception as exc:
        if is_gone(exc):
            return None
        raise


def metadata(collection: Any) -> dict[str, Any]:
    return dict(collection.metadata or {})


def open_collection(client: Any, name: str, configuration: dict[str, Any]) -> Any:
    """The live collection `name`, after settling an interrupted swap; created if the store
    has none (a new store)."""
    live = find(client, name)
    if live is None or REBUILD_KEY in metadata(live) or REBUILT_FROM_KEY in metadata(live):
        settle(client, name)
        live = find(client, name)
    if live is None:
        live = client.get_or_create_collection(
            name, configuration=configuration, embedding_function=None
        )
    return live


def settle(client: Any, name: str, step: Step | None = None) -> str | None:
    """Finish or undo an interrupted swap of `name` (see the module docstring); returns what
    was done ("promoted", "rolled back", "finished", "dropped retired"), or None."""
    step = step or _no_step
    done: str | None = None
    live = find(client, name)
    if live is None:
        copy = find(client, rebuild_name(name))
        if copy is not None and metadata(copy).get(REBUILD_KEY) == VERIFIED:
            step("promote")
            live = rename(client, copy, name)
            done = "promoted"
        else:
            old = find(client, retired_name(name))
            if old is None:
                return None  # nothing was ever here: a new store
            step("roll back")
            rename(client, old, name)
            return "rolled back"
    if REBUILD_KEY in metadata(live):
        step("finish")
        finish(live)
        done = done or "finished"
    old = find(client, retired_name(name))
    if old is not None and metadata(live).get(REBUILT_FROM_KEY) == str(old.id):
        step("drop retired")
        drop(client, retired_name(name))
        done = done or "dropped retired"
    return done


def rename(client: Any, collection: Any, new_name: str) -> Any:
    """Rename; if another process already did, return what it made. Returns the collection
    now called `new_name`."""
    try:
        collection.modify(name=new_name)
    except Exception:
        now = find(client, new_name)
        if now is None or now.id != collection.id:
            raise
    got = find(client, new_name)
    if got is None or got.id != collection.id:
        raise RuntimeError(f"collection {new_name} changed while it was being renamed")
    return got


def finish(live: Any) -> None:
    """Step 5: a swapped-in copy becomes the plain live collection, with a new generation."""
    md = {k: v for k, v in metadata(live).items() if k != REBUILD_KEY}
    md[GENERATION_KEY] = uuid.uuid4().hex
    live.modify(metadata=md)


def drop(client: Any, name: str) -> None:
    try:
        client.delete_collection(name)
    except Exception as exc:
        if not is_gone(exc):
            raise


def _no_step(_: str) -> None:
    return None
