"""Document metadata from YAML front matter or a `<file>.meta.yaml` sidecar, with defaults
from the path, validated against `index.records.DocumentMeta` (see docs/metadata.md)."""

from __future__ import annotations

import difflib
import re
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from index.errors import MetadataError
from index.records import DocType, DocumentMeta

SIDECAR_SUFFIX = ".meta.yaml"
_FRONT_MATTER = re.compile(r"\A---[ \t]*\r?\n(.*?)\r?\n---[ \t]*(?:\r?\n|\Z)", re.DOTALL)
_TYPE_FOLDERS = {t.value: t for t in DocType} | {f"{t.value}s": t for t in DocType}
_TYPE_FOLDERS |= {"faqs": DocType.FAQ, "policies": DocType.POLICY}


def split_front_matter(text: str) -> tuple[str | None, str]:
    """(front matter YAML or None, body)."""
    match = _FRONT_MATTER.match(text)
    if not match:
        return None, text
    return match.group(1), text[match.end() :]


def sidecar_path(path: Path) -> Path:
    return path.with_name(path.name + SIDECAR_SUFFIX)


class _Loader(yaml.SafeLoader):
    """Safe YAML that leaves dates as text: the schema parses them, so a bad date becomes a
    field error instead of a crash inside the YAML library."""


_Loader.yaml_implicit_resolvers = {
    first: [(tag, regexp) for tag, regexp in resolvers if tag != "tag:yaml.org,2002:timestamp"]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}


def _load_yaml(source: str, where: Path) -> dict[str, Any]:
    try:
        data = yaml.load(source, Loader=_Loader)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = f" at line {mark.line + 1}" if mark is not None else ""
        raise MetadataError(where, "(yaml)", f"not valid YAML{line}: {exc}") from exc
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise MetadataError(where, "(yaml)", "metadata must be a mapping of field: value")
    return {str(k): v for k, v in data.items()}


def slugify(text: str) -> str:
    slug = re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")
    return slug or "document"


def path_defaults(path: Path, root: Path) -> dict[str, Any]:
    """What the folder layout says: `<root>/<department>/.../<type folder>/<file>`."""
    rel = path.relative_to(root)
    defaults: dict[str, Any] = {"id": slugify(path.name.split(".")[0])}
    folders = [p.lower() for p in rel.parts[:-1]]
    if folders:
        defaults["department"] = folders[0].replace("-", "_")
    for folder in folders:
        if folder in _TYPE_FOLDERS:
            defaults["doc_type"] = _TYPE_FOLDERS[folder].value
    return defaults


def read_metadata(
    path: Path,
    root: Path,
    front_matter: str | None,
    first_heading: str | None,
) -> DocumentMeta:
    """Merge front matter or sidecar over path defaults and validate; MetadataError on any
    problem, naming the file that holds the metadata and the field."""
    sidecar = sidecar_path(path)
    declared: dict[str, Any] = {}
    source = path
    if sidecar.exists():
        if front_matter is not None:
            raise MetadataError(
                path, "(front matter)", f"both front matter and a sidecar {sidecar.name}: keep one"
            )
        source = sidecar
        declared = _load_yaml(_read_text(sidecar), sidecar)
    elif front_matter is not None:
        declared = _load_yaml(front_matter, path)

    values = path_defaults(path, root)
    values["title"] = first_heading or path.stem.replace("_", " ").replace("-", " ")
    values.update({k: v for k, v in declared.items() if v is not None})
    _check_unknown(declared, source)
    try:
        return DocumentMeta.model_validate(values)
    except ValidationError as exc:
        raise _metadata_error(exc, source) from exc


def _read_text(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise MetadataError(path, "(file)", f"not UTF-8 text ({exc.reason})") from exc
    except OSError as exc:
        raise MetadataError(path, "(file)", f"cannot read: {exc.strerror}") from exc


def _check_unknown(declared: dict[str, Any], source: Path) -> None:
    known = set(DocumentMeta.model_fields)
    for key in declared:
        if key not in known:
            close = difflib.get_close_matches(key, sorted(known), n=1)
            hint = f"; did you mean '{close[0]}'?" if close else ""
            raise MetadataError(source, key, f"unknown field{hint} (see docs/metadata.md)")


def _metadata_error(exc: ValidationError, source: Path) -> MetadataError:
    err = exc.errors()[0]
    field = ".".join(str(p) for p in err["loc"]) or "(metadata)"
    kind = err["type"]
    if kind == "missing":
        reason = "required but missing: declare it in the metadata (docs/metadata.md)"
    elif kind == "enum":
        allowed = err.get("ctx", {}).get("expected", "")
        reason = f"{err['input']!r} is not allowed; use one of {allowed}"
    elif kind.startswith("date"):
        reason = f"{err['input']!r} is not a date: write YYYY-MM-DD"
    else:
        message = str(err["msg"]).removeprefix("Value error, ")
        reason = f"{message} (got {err.get('input')!r})"
    return MetadataError(source, field, reason)
