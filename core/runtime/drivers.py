"""What a provider implements to back the resource handles of
:mod:`sls_py.runtime.resources` (typing protocols, for type checkers).

Kept apart from the handles so that importing them inside a function does not
import :mod:`typing`; ``sls_py.runtime.resources`` re-exports these names.
"""

from __future__ import annotations

from typing import Any, Protocol


class BucketDriver(Protocol):
    def put(self, key: str, data: bytes, content_type: str | None = None) -> None: ...
    def get(self, key: str) -> bytes: ...
    def list(self, prefix: str = "") -> list[str]: ...
    def delete(self, key: str) -> None: ...


class QueueDriver(Protocol):
    def send(self, body: str) -> str: ...


class TableDriver(Protocol):
    def get(self, key: dict[str, Any]) -> dict[str, Any] | None: ...
    def put(self, item: dict[str, Any]) -> None: ...
    def delete(self, key: dict[str, Any]) -> None: ...
    def query(self, key_value: Any) -> list[dict[str, Any]]: ...
    def scan(self) -> list[dict[str, Any]]: ...


class DatabaseDriver(Protocol):
    """One database. ``execute`` runs one statement with ``:name`` parameters and
    returns its rows (``None`` for a statement that returns none) and row count;
    it raises :class:`~sls_py.runtime.database.DatabaseError` with the server's
    message. ``begin``/``commit``/``rollback`` act on this thread's transaction."""

    def execute(self, sql: str, params: dict[str, Any]) -> tuple[list[dict[str, Any]] | None, int]: ...
    def begin(self) -> None: ...
    def commit(self) -> None: ...
    def rollback(self) -> None: ...


class Driver(Protocol):
    """What a provider implements to back the resource handles."""

    def bucket(self, name: str, physical: str) -> BucketDriver: ...
    def queue(self, name: str, physical: str) -> QueueDriver: ...
    def table(self, name: str, physical: str, key: str, sort_key: str | None) -> TableDriver: ...

    # optional: ``def database(self, name: str, physical: str) -> DatabaseDriver``;
    # a driver without it makes ``app.database`` handles fail with a clear message

class ConfigDriver(Protocol):
    """A stage's config store as a function reads it (``Driver.config(name, physical)``).

    ``config`` is optional on a :class:`Driver`: a provider without config
    support leaves it out (and does not declare the ``resource.config``
    capability).
    """

    def read(self) -> dict[str, str]: ...
