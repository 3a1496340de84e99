"""Metadata defaults declared for many files at once: a `kb-defaults.yaml` in any folder of the
ingested tree applies to every file below it, the nearest folder's value winning; defaults given
for one run (`kb ingest --default key=value`) apply below all of them. A file's own front matter
or sidecar wins over every default (docs/metadata.md).

Values are checked for unknown fields here and validated with the file's own metadata (so a bad
`doc_type` in a defaults file is reported for each file it applies to, naming the defaults file).
"""

from __future__ import annotations

import difflib
import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from index.errors import InvalidRequestError, MetadataError
from index.records import DocumentMeta
from ingest.yamltext import load_mapping, load_value, read_yaml_text

DEFAULTS_FILE = "kb-defaults.yaml"
RUN_DEFAULTS = "--default"  # where run defaults come from, in error messages
# Shared by every file below, these would give them all one id or one title.
NOT_DEFAULTABLE = frozenset({"id", "title"})


@dataclass(frozen=True)
class Layer:
    """Default values for one file, and where each came from (a defaults file, or the run)."""

    values: dict[str, Any] = field(default_factory=dict)
    sources: dict[str, str] = field(default_factory=dict)

    def over(self, other: Layer) -> Layer:
        """This layer's values winning over `other`'s."""
        return Layer({**other.values, **self.values}, {**other.sources, **self.sources})

    def fingerprint(self) -> str:
        """Canonical text of the values, for the document's content hash."""
        return json.dumps(self.values, sort_keys=True, default=str)


def check_fields(values: Mapping[str, Any], where: Path | str) -> None:
    """MetadataError for a field a default may not set, or one that does not exist."""
    known = set(DocumentMeta.model_fields)
    for key in values:
        if key in NOT_DEFAULTABLE:
            raise MetadataError(
                where, key, f"'{key}' cannot be a default: every file below would share it"
            )
        if key not in known:
            close = difflib.get_close_matches(key, sorted(known), n=1)
            hint = f"; did you mean '{close[0]}'?" if close else ""
            raise MetadataError(where, key, f"unknown field{hint} (see docs/metadata.md)")


def parse_run_defaults(pairs: Iterable[str]) -> dict[str, Any]:
    """`key=value` pairs (values read as YAML: `access=[finance, legal]`); InvalidRequestError
    naming the pair at fault."""
    values: dict[str, Any] = {}
    for pair in pairs:
        key, sep, raw = pair.partition("=")
        key = key.strip()
        if not sep or not key:
            raise InvalidRequestError(RUN_DEFAULTS, f"'{pair}' is not key=value")
        try:
            value = load_value(raw)
        except yaml.YAMLError as exc:
            raise InvalidRequestError(RUN_DEFAULTS, f"'{pair}': value is not valid YAML") from exc
        values[key] = value
    try:
        check_fields(values, RUN_DEFAULTS)
    except MetadataError as exc:
        raise InvalidRequestError(RUN_DEFAULTS, f"{exc.field}: {exc.reason}") from exc
    return values


class FolderDefaults:
    """The defaults of the files under one root: each folder's `kb-defaults.yaml` read once."""

    def __init__(self, root: Path, run_defaults: Mapping[str, Any] | None = None) -> None:
        self._root = root
        run = dict(run_defaults or {})
        self._run = Layer(run, dict.fromkeys(run, RUN_DEFAULTS))
        self._folders: dict[Path, Layer] = {}

    def for_file(self, path: Path) -> Layer:
        """The defaults that apply to `path` (a file under the root); MetadataError naming a
        defaults file that cannot be used."""
        return self._folder(path.parent)

    def _folder(self, folder: Path) -> Layer:
        if folder not in self._folders:
            if folder == self._root:
                inherited = self._run
            elif self._root in folder.parents:
                inherited = self._folder(folder.parent)
            else:  # outside the ingested tree: nothing of it applies
                return self._run
            self._folders[folder] = self._own(folder).over(inherited)
        return self._folders[folder]

    @staticmethod
    def _own(folder: Path) -> Layer:
        path = folder / DEFAULTS_FILE
        if not path.is_file():
            return Layer()
        values = load_mapping(read_yaml_text(path), path)
        check_fields(values, path)
        present = {k: v for k, v in values.items() if v is not None}
        return Layer(present, dict.fromkeys(present, str(path)))
