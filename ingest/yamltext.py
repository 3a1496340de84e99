"""YAML metadata as people write it: front matter, sidecars and defaults files read safely,
with every problem a MetadataError that names the file."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from index.errors import DocumentError, MetadataError
from ingest.parsing import decode_text


class _Loader(yaml.SafeLoader):
    """Safe YAML that leaves dates as text: the schema parses them, so a bad date becomes a
    field error instead of a crash inside the YAML library."""


_Loader.yaml_implicit_resolvers = {
    first: [(tag, regexp) for tag, regexp in resolvers if tag != "tag:yaml.org,2002:timestamp"]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}


def load_value(source: str) -> Any:
    """One YAML value (raises yaml.YAMLError)."""
    return yaml.load(source, Loader=_Loader)


def load_mapping(source: str, where: Path) -> dict[str, Any]:
    """A mapping of field: value ({} for an empty document)."""
    try:
        data = load_value(source)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = f" at line {mark.line + 1}" if mark is not None else ""
        raise MetadataError(where, "(yaml)", f"not valid YAML{line}: {exc}") from exc
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise MetadataError(where, "(yaml)", "metadata must be a mapping of field: value")
    return {str(k): v for k, v in data.items()}


def read_yaml_text(path: Path) -> str:
    try:
        return decode_text(path, path.read_bytes())
    except DocumentError as exc:
        raise MetadataError(path, "(file)", exc.reason) from exc
    except OSError as exc:
        raise MetadataError(path, "(file)", f"cannot read: {exc.strerror or exc}") from exc
