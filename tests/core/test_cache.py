"""The cache handle (sls_py.runtime.cache): the same answers from the in-memory
test driver and from a real valkey-server through RedisCache; the spec and
capability that declaring one adds."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sls_py import App
from sls_py.config import build_spec, load_project
from sls_py.errors import SpecError
from sls_py.runtime import Cache, MemoryDriver, ResourceError, use_driver
from sls_py.runtime.cache import RedisCache
from support.valkey_server import running_valkey


class _UrlDriver:
    """A driver whose caches are RedisCache on one URL (what the providers do)."""

    def __init__(self, url: str) -> None:
        self.url = url

    def cache(self, name: str, physical: str) -> RedisCache:
        return RedisCache(self.url)


@pytest.fixture(scope="module")
def valkey_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    with running_valkey(tmp_path_factory.mktemp("valkey")) as url:
        yield url


@pytest.fixture(params=["memory", "valkey"])
def cache(request: pytest.FixtureRequest) -> Iterator[Cache]:
    if request.param == "memory":
        use_driver(MemoryDriver())
    else:
        use_driver(_UrlDriver(request.getfixturevalue("valkey_url")))  # type: ignore[arg-type]
    handle = Cache(f"c{time.monotonic_ns()}")
    try:
        yield handle
    finally:
        use_driver(None)


def _prefix() -> str:
    return f"k{time.monotonic_ns()}:"


def test_get_set_delete(cache: Cache) -> None:
    p = _prefix()
    assert cache.get(p + "missing") is None
    cache.set(p + "s", "héllo")
    cache.set(p + "b", b"\x00\xff")
    assert (cache.get(p + "s"), cache.get(p + "b")) == ("héllo".encode(), b"\x00\xff")
    assert (cache.delete(p + "s"), cache.delete(p + "s")) == (True, False)
    assert cache.get(p + "s") is None


def test_incr_expire_ttl(cache: Cache) -> None:
    p = _prefix()
    assert [cache.incr(p + "n"), cache.incr(p + "n"), cache.incr(p + "n", 5)] == [1, 2, 7]
    assert cache.get(p + "n") == b"7"
    assert cache.ttl(p + "n") is None
    assert cache.expire(p + "n", 100) is True
    ttl = cache.ttl(p + "n")
    assert ttl is not None and 99 < ttl <= 100
    assert cache.expire(p + "nothing", 5) is False
    assert cache.ttl(p + "nothing") is None


def test_ttl_expiry(cache: Cache) -> None:
    p = _prefix()
    cache.set(p + "brief", "x", ttl_s=0.2)
    assert cache.get(p + "brief") == b"x"
    time.sleep(0.35)
    assert cache.get(p + "brief") is None


def test_json_helpers(cache: Cache) -> None:
    p = _prefix()
    cache.set_json(p + "j", {"a": [1, 2], "b": "ü"})
    assert cache.get(p + "j") == '{"a":[1,2],"b":"ü"}'.encode()
    assert cache.get_json(p + "j") == {"a": [1, 2], "b": "ü"}
    assert cache.get_json(p + "none") is None


def test_bad_values_say_what_to_do(cache: Cache) -> None:
    with pytest.raises(ResourceError, match="values are bytes or str, got dict"):
        cache.set("k", {"a": 1})  # type: ignore[arg-type]
    with pytest.raises(ResourceError, match="ttl_s must be a positive number of seconds, got 0"):
        cache.set("k", "v", ttl_s=0)
    with pytest.raises(ResourceError, match="incr by an int"):
        cache.incr("k", 1.5)  # type: ignore[arg-type]


def test_client_is_the_raw_redis_client(valkey_url: str) -> None:
    use_driver(_UrlDriver(valkey_url))  # type: ignore[arg-type]
    try:
        raw: Any = Cache("raw").client()
        raw.hset("h", mapping={"a": "1"})
        assert raw.hgetall("h") == {b"a": b"1"}
        assert type(raw).__module__.startswith(("valkey", "redis"))
    finally:
        use_driver(None)
    use_driver(MemoryDriver())
    try:
        with pytest.raises(ResourceError, match="in-memory test driver has no Redis server"):
            Cache("raw").client()
    finally:
        use_driver(None)


def test_a_declared_cache_is_in_the_spec_and_needs_the_capability(tmp_path: Path) -> None:
    (tmp_path / "pyproject.toml").write_text('[tool.sls-py]\napp = "a:app"\n')
    project = load_project(tmp_path)
    app = App("shop")
    handle = app.cache("sessions")
    assert repr(handle) == "Cache('sessions')"
    spec = build_spec(project, app, "dev")
    assert [c.model_dump() for c in spec.caches] == [
        {"name": "sessions", "qualified_name": "shop-dev-sessions"}
    ]
    assert spec.required_capabilities()["resource.cache"] == "cache 'sessions'"
    bad = App("shop")
    bad.cache("Sessions!")
    with pytest.raises(SpecError, match="cache name 'Sessions!' is not valid"):
        build_spec(project, bad, "dev")
