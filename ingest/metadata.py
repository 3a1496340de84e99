"""Document metadata from YAML front matter or a `<file>.meta.yaml` sidecar, over defaults
from `kb-defaults.yaml` files (ingest/defaults.py) and from the path, validated against
`index.records.DocumentMeta` (see docs/metadata.md)."""

from __future__ import annotations

import difflib
import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from index.errors import MetadataError
from index.records import (
    NEUTRAL_DOC_TYPE,
    UNASSIGNED_DEPARTMENT,
    UNKNOWN_OWNER,
    DocType,
    DocumentMeta,
)
from ingest.defaults import Layer
from ingest.titles import readable_name
from ingest.yamltext import load_mapping, read_yaml_text

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


def slugify(text: str) -> str:
    slug = re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")
    return slug or "document"


def path_defaults(path: Path, root: Path, departments: frozenset[str]) -> dict[str, Any]:
    """What the folder layout says: `<root>/.../<department>/.../<type folder>/<file>`. The
    folder nearest the file that is named like one of `departments` gives the department
    (`customer-service/` names `customer_service`); a type folder (`playbooks/`, `faq/`...)
    gives the doc_type."""
    rel = path.relative_to(root)
    defaults: dict[str, Any] = {"id": slugify(path.name.split(".")[0])}
    folders = [p.lower() for p in rel.parts[:-1]]
    named = [f.replace("-", "_") for f in reversed(folders) if f.replace("-", "_") in departments]
    if named:
        defaults["department"] = named[0]
    for folder in folders:
        if folder in _TYPE_FOLDERS:
            defaults["doc_type"] = _TYPE_FOLDERS[folder].value
    return defaults


# The departments of the organisation the product ships for (docs/company.md); a deployment
# names its own (KB_DEPARTMENTS).
DEPARTMENTS = frozenset(
    {"coe", "customer_service", "finance", "hr", "it", "legal", "marketing", "sales"}
)


@dataclass(frozen=True)
class MetadataOptions:
    """How metadata that says too little is treated. `strict`: a file missing doc_type,
    department or owner fails; otherwise it is ingested with neutral values (`NEUTRAL`) and a
    warning. `departments`: the organisation's departments, which folders may name (see
    `path_defaults`)."""

    strict: bool = False
    departments: frozenset[str] = DEPARTMENTS


# Required fields a lenient ingest fills when neither metadata, defaults nor folders give them.
NEUTRAL: dict[str, str] = {
    "doc_type": NEUTRAL_DOC_TYPE.value,
    "department": UNASSIGNED_DEPARTMENT,
    "owner": UNKNOWN_OWNER,
}


@dataclass(frozen=True)
class ResolvedMeta:
    meta: DocumentMeta
    defaulted: dict[str, str]  # field -> neutral value, for the fields nothing gave


def metadata_inputs(path: Path, root: Path, defaults: Layer, options: MetadataOptions) -> str:
    """Everything besides the file and its sidecar that decides its metadata, as text for its
    content hash: a change to any of it re-ingests the document."""
    inputs = {
        "defaults": defaults.values,
        "path": path_defaults(path, root, options.departments),
        "strict": options.strict,
    }
    return json.dumps(inputs, sort_keys=True, default=str)


def read_metadata(
    path: Path,
    root: Path,
    front_matter: str | None,
    first_heading: str | None,
) -> DocumentMeta:
    """The file's own metadata over path defaults, strictly validated (no defaults files, no
    neutral values): MetadataError naming the file that holds the metadata and the field."""
    title = first_heading or readable_name(path)
    return resolve_metadata(
        path, root, front_matter, title, options=MetadataOptions(strict=True)
    ).meta


def resolve_metadata(
    path: Path,
    root: Path,
    front_matter: str | None,
    title: str,
    *,
    defaults: Layer | None = None,
    options: MetadataOptions,
) -> ResolvedMeta:
    """Merge, lowest first: path defaults and the inferred `title`, `defaults` (defaults files
    and run defaults), the file's front matter or sidecar; then, unless strict, neutral values
    for required fields still missing. Validate; MetadataError naming the file (or defaults
    file) that holds the value at fault, and the field."""
    declared, source = _declared(path, front_matter)
    _check_unknown(declared, source)
    layer = defaults or Layer()
    values = path_defaults(path, root, options.departments)
    values["title"] = title
    values.update(layer.values)
    values.update({k: v for k, v in declared.items() if v is not None})
    defaulted: dict[str, str] = {}
    if not options.strict:
        defaulted = {k: v for k, v in NEUTRAL.items() if values.get(k) in (None, "")}
        values.update(defaulted)
    try:
        meta = DocumentMeta.model_validate(values)
    except ValidationError as exc:
        field = _first_field(exc)
        at_fault = source if field in declared else layer.sources.get(field, str(source))
        raise _metadata_error(exc, Path(at_fault)) from exc
    return ResolvedMeta(meta, defaulted)


def _declared(path: Path, front_matter: str | None) -> tuple[dict[str, Any], Path]:
    """(the file's own metadata, the file that holds it)."""
    sidecar = sidecar_path(path)
    if sidecar.exists():
        if front_matter is not None:
            raise MetadataError(
                path, "(front matter)", f"both front matter and a sidecar {sidecar.name}: keep one"
            )
        return load_mapping(read_yaml_text(sidecar), sidecar), sidecar
    if front_matter is not None:
        return load_mapping(front_matter, path), path
    return {}, path


def _check_unknown(declared: dict[str, Any], source: Path) -> None:
    known = set(DocumentMeta.model_fields)
    for key in declared:
        if key not in known:
            close = difflib.get_close_matches(key, sorted(known), n=1)
            hint = f"; did you mean '{close[0]}'?" if close else ""
            raise MetadataError(source, key, f"unknown field{hint} (see docs/metadata.md)")


def _first_field(exc: ValidationError) -> str:
    return ".".join(str(p) for p in exc.errors()[0]["loc"]) or "(metadata)"


def _metadata_error(exc: ValidationError, source: Path) -> MetadataError:
    err = exc.errors()[0]
    field = _first_field(exc)
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
