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


class Driver(Protocol):
    """What a provider implements to back the resource handles."""

    def bucket(self, name: str, physical: str) -> BucketDriver: ...
    def queue(self, name: str, physical: str) -> QueueDriver: ...
    def table(self, name: str, physical: str, key: str, sort_key: str | None) -> TableDriver: ...


class ConfigDriver(Protocol):
    """A stage's config store as a function reads it (``Driver.config(name, physical)``).

    ``config`` is optional on a :class:`Driver`: a provider without config
    support leaves it out (and does not declare the ``resource.config``
    capability).
    """

    def read(self) -> dict[str, str]: ...
