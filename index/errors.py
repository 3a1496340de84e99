"""Every error the knowledge base raises on purpose, in one tree.

    KBError                      base; carries a message a user can act on
    ├── InputError               the caller's input is wrong (HTTP 4xx)
    │   ├── DocumentError        a file cannot be ingested: unreadable, corrupt, empty, wrong
    │   │   │                    encoding, unsupported format (names the file)
    │   │   └── MetadataError    a document's metadata is invalid (names the file and field)
    │   ├── InvalidRequestError  a request parameter is wrong (names the parameter)
    │   ├── NotFoundError        a named document or resource does not exist
    │   ├── TooLargeError        a request body or upload is over its size limit
    │   ├── AuthenticationError  no API key, or one that is unknown or revoked
    │   ├── PermissionDeniedError  the caller's role may not do this
    │   ├── ConflictError        the request clashes with the current state (a document
    │   │                        that exists, an ingest already running); says how to resolve it
    │   └── RateLimitedError     the caller made too many requests; says when to retry
    ├── ConfigurationError       settings point at something missing or inconsistent
    └── StoreError               the vector store is unreachable or refused an operation

The HTTP layer maps this tree to status codes in one place (api/errors.py); the CLI prints the
message and exits non-zero. Nothing else in the code base catches these to hide them.
"""

from __future__ import annotations

from pathlib import Path


class KBError(Exception):
    """Base of every deliberate error: the message says what was wrong and what to do."""


class InputError(KBError):
    """The caller's input is wrong; retrying the same input fails the same way."""


class DocumentError(InputError):
    """A file cannot be ingested."""

    def __init__(self, path: Path | str, reason: str) -> None:
        self.path = str(path)
        self.reason = reason
        super().__init__(f"{self.path}: {reason}")


class MetadataError(DocumentError):
    """A document's metadata (front matter or sidecar) is invalid."""

    def __init__(self, path: Path | str, field: str, reason: str) -> None:
        self.field = field
        super().__init__(path, f"metadata field '{field}': {reason}")


class InvalidRequestError(InputError):
    """A request or command-line parameter is wrong."""

    def __init__(self, parameter: str, reason: str) -> None:
        self.parameter = parameter
        self.reason = reason
        super().__init__(f"parameter '{parameter}': {reason}")


class NotFoundError(InputError):
    """A named document or resource does not exist."""


class ConfigurationError(KBError):
    """Settings point at something missing or inconsistent."""


class StoreError(KBError):
    """The vector store is unreachable or refused an operation."""


class TooLargeError(InputError):
    """A request body or uploaded file is over its size limit."""


class AuthenticationError(InputError):
    """No API key, or a malformed, unknown or revoked one."""


class PermissionDeniedError(InputError):
    """The caller is known but its role may not do this."""


class ConflictError(InputError):
    """The request clashes with the current state: it would overwrite a document without
    being asked to, or another ingest is running."""


class RateLimitedError(InputError):
    """The caller is over its request rate."""

    def __init__(self, message: str, retry_after_s: float) -> None:
        self.retry_after_s = retry_after_s
        super().__init__(message)
