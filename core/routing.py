"""Matching HTTP requests to routes, the way API Gateway does.

Static segments beat ``{param}`` segments, which beat a greedy ``{proxy+}``.
``ANY`` matches every method. Used by the local gateway and the in-process
test client, so both route alike.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Generic, TypeVar

T = TypeVar("T")

_PARAM = re.compile(r"^\{([A-Za-z_][A-Za-z0-9_]*)(\+?)\}$")


@dataclass(frozen=True)
class Match(Generic[T]):
    """A matched route: its target, template and path parameters."""

    target: T
    route: str
    params: dict[str, str]


class Router(Generic[T]):
    """Routes ``(method, path template)`` to targets."""

    def __init__(self) -> None:
        self._routes: list[tuple[tuple[int, ...], str, str, re.Pattern[str], T]] = []
        # routes without parameters, by (method, path): they beat every other route
        self._static: dict[tuple[str, str], tuple[str, T]] = {}

    def add(self, method: str, template: str, target: T) -> None:
        """Add a route; ``template`` may hold ``{name}`` and a final ``{name+}``."""
        pattern = ["^"]
        rank: list[int] = []
        for seg in [s for s in template.split("/") if s]:
            m = _PARAM.match(seg)
            if m is None:
                pattern.append("/" + re.escape(seg))
                rank.append(0)
            elif m.group(2):
                pattern.append(f"/(?P<{m.group(1)}>.+)")
                rank.append(2)
            else:
                pattern.append(f"/(?P<{m.group(1)}>[^/]+)")
                rank.append(1)
        pattern.append("/?$" if len(pattern) > 1 else "/$")
        if not any(rank):
            path = "/" + "/".join(s for s in template.split("/") if s)
            self._static.setdefault((method.upper(), path), (template, target))
        self._routes.append((tuple(rank), method.upper(), template, re.compile("".join(pattern)), target))
        self._routes.sort(key=lambda r: (r[0], r[1] == "ANY"))

    def match(self, method: str, path: str) -> Match[T] | None:
        """The best route for ``method path``, or ``None``."""
        method = method.upper()
        if self._static:  # one trailing slash may follow, as the patterns allow
            key = path[:-1] if len(path) > 2 and path[-1] == "/" and path[-2] != "/" else path
            static = self._static.get((method, key)) or self._static.get(("ANY", key))
            if static is not None:
                return Match(static[1], static[0], {})
        for _, m, template, regex, target in self._routes:
            if m != method and m != "ANY":
                continue
            found = regex.match(path)
            if found:
                return Match(target, template, found.groupdict())
        return None

    def methods_for(self, path: str) -> list[str]:
        """The methods that have a route matching ``path`` (for CORS preflight)."""
        return sorted({m for _, m, _, regex, _ in self._routes if regex.match(path)})
