"""Value classes without :mod:`dataclasses`, because import time is cold-start time.

``@dataclass`` ``exec``s generated methods for every class at import (~0.5 ms
each) and imports ``inspect``. The runtime's events and the app's declarations
are instead plain classes with an explicit ``__init__`` that name their fields,
in order, in ``__match_args__``; these bases derive from it what a dataclass
has: repr, equality, and (frozen) immutability and a hash. Instances keep
their ``__dict__``, so ``vars(event)`` still works.
"""

from __future__ import annotations

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing
if TYPE_CHECKING:
    from typing import Any


class Record:
    """A mutable value class: ``__match_args__`` names its fields, which the
    subclass's ``__init__`` sets. Unhashable (defining ``__eq__`` sets
    ``__hash__`` to ``None``), as a dataclass with ``eq`` is."""

    __match_args__: tuple[str, ...] = ()

    def _values(self) -> tuple[Any, ...]:
        return tuple(getattr(self, name) for name in self.__match_args__)

    def _asdict(self) -> dict[str, Any]:
        """The fields as a dict (shallow), in declaration order."""
        return {name: getattr(self, name) for name in self.__match_args__}

    def __repr__(self) -> str:
        fields = ", ".join(f"{name}={getattr(self, name)!r}" for name in self.__match_args__)
        return f"{type(self).__qualname__}({fields})"

    def __eq__(self, other: object) -> bool:
        if other.__class__ is not self.__class__:
            return NotImplemented
        assert isinstance(other, Record)
        return self._values() == other._values()


class FrozenRecord(Record):
    """An immutable, hashable value class; its ``__init__`` passes every field to
    ``super().__init__`` by name. Assigning or deleting an attribute raises
    ``AttributeError``."""

    def __init__(self, **fields: Any) -> None:
        for name in self.__match_args__:
            object.__setattr__(self, name, fields.pop(name))
        if fields:
            raise TypeError(f"{type(self).__name__} has no field {next(iter(fields))!r}")

    def __setattr__(self, name: str, value: Any) -> None:
        raise AttributeError(f"cannot assign to field {name!r}: {type(self).__name__} is frozen")

    def __delattr__(self, name: str) -> None:
        raise AttributeError(f"cannot delete field {name!r}: {type(self).__name__} is frozen")

    def __hash__(self) -> int:
        return hash(self._values())
