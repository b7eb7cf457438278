"""Route matching: API Gateway's precedence, and the static-path shortcut agreeing
with the full pattern matching on every path."""

from __future__ import annotations

import itertools

import pytest
from sls_py.routing import Router

ROUTES = [
    ("GET", "/"),
    ("GET", "/a"),
    ("ANY", "/a"),
    ("POST", "/a/b"),
    ("GET", "/a/{x}"),
    ("ANY", "/a/{x}/c"),
    ("GET", "/files/{path+}"),
    ("ANY", "/{proxy+}"),
    ("GET", "/a/b"),
]


def _router() -> Router[str]:
    router: Router[str] = Router()
    for method, template in ROUTES:
        router.add(method, template, f"{method} {template}")
    return router


def _by_patterns(router: Router[str], method: str, path: str) -> tuple[str, str, dict[str, str]] | None:
    """What the ranked pattern list alone answers (no static shortcut)."""
    for _, m, template, regex, target in router._routes:
        if m in (method, "ANY"):
            found = regex.match(path)
            if found:
                return target, template, found.groupdict()
    return None


@pytest.mark.parametrize(
    ("method", "path", "expected"),
    [
        ("GET", "/", ("GET /", "/", {})),
        ("GET", "/a", ("GET /a", "/a", {})),
        ("GET", "/a/", ("GET /a", "/a", {})),  # a trailing slash matches
        ("DELETE", "/a", ("ANY /a", "/a", {})),
        ("POST", "/a/b", ("POST /a/b", "/a/b", {})),
        ("GET", "/a/b", ("GET /a/b", "/a/b", {})),  # static beats /a/{x}
        ("PUT", "/a/b", ("ANY /{proxy+}", "/{proxy+}", {"proxy": "a/b"})),
        ("GET", "/a/z", ("GET /a/{x}", "/a/{x}", {"x": "z"})),
        ("GET", "/files/x/y.txt", ("GET /files/{path+}", "/files/{path+}", {"path": "x/y.txt"})),
        ("GET", "//", ("ANY /{proxy+}", "/{proxy+}", {"proxy": "/"})),
    ],
)
def test_precedence(method: str, path: str, expected: tuple[str, str, dict[str, str]]) -> None:
    found = _router().match(method, path)
    assert found is not None
    assert (found.target, found.route, found.params) == expected


def test_static_shortcut_agrees_with_the_patterns_on_every_path() -> None:
    router = _router()
    segments = ["", "a", "b", "c", "files", "x"]
    paths = {"/", "//", "///"}
    for n in (1, 2, 3):
        for parts in itertools.product(segments, repeat=n):
            path = "/" + "/".join(parts)
            paths.update({path, path + "/"})
    for method, path in itertools.product(["GET", "POST", "PUT", "ANY"], sorted(paths)):
        found = router.match(method, path)
        got = (found.target, found.route, found.params) if found else None
        assert got == _by_patterns(router, method, path), (method, path)


def test_static_match_params_are_not_shared() -> None:
    router = _router()
    first = router.match("GET", "/a")
    assert first is not None
    first.params["x"] = "changed"
    again = router.match("GET", "/a")
    assert again is not None and again.params == {}


def test_bad_template_segment_is_literal() -> None:
    router: Router[str] = Router()
    router.add("GET", "/{not valid}", "t")
    assert router.match("GET", "/{not valid}") is not None
    assert router.match("GET", "/other") is None
