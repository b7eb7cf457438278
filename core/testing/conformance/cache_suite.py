"""The conformance suite's cache section (``resource.cache``): the same answers
from every provider's ``app.cache``, values kept across invocations, expiry
after ``ttl_s``, and ``incr`` atomic under concurrent invocations.

A provider that does not declare ``resource.cache`` has these skipped with
that reason, like any other capability.
"""

from __future__ import annotations

import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from .harness import Harness


class CacheConformance:
    """Mixed into :class:`~sls_py.testing.conformance.ProviderConformance`."""

    def need(self, harness: Harness, *capabilities: str) -> None:  # pragma: no cover - overridden
        raise NotImplementedError

    def _call(self, harness: Harness, **call: Any) -> Any:
        inv = harness.invoke("cache-call", call)
        assert inv.error is None, inv.error
        return inv.result

    def test_cache_interface(self, conformance: Harness) -> None:
        self.need(conformance, "invoke", "resource.cache")
        inv = conformance.invoke("cache-ops", {"run": uuid.uuid4().hex[:10]})
        assert inv.error is None, inv.error
        assert inv.result == {
            "get_text": "héllo",
            "binary_intact": True,
            "get_missing": None,
            "incr": [1, 2, 7],
            "counter_as_bytes": "7",
            "ttl_without_expiry": None,
            "ttl_missing": None,
            "expire_missing": False,
            "expire": True,
            "ttl_after_expire": True,
            "ttl_of_set": True,
            "json_raw": '{"a":[1,2],"b":"ü"}',
            "json": {"a": [1, 2], "b": "ü"},
            "delete": [True, False],
            "after_delete": None,
        }

    def test_cache_values_outlive_the_invocation_until_their_ttl(self, conformance: Harness) -> None:
        self.need(conformance, "invoke", "resource.cache")
        key = f"ttl:{uuid.uuid4().hex[:10]}"
        self._call(conformance, op="set", key=key + ":kept", value="stays")
        # (that a value set with a ttl is there until then, cache-ops checks in one invocation:
        # an invocation here may take longer than a short ttl on some providers)
        self._call(conformance, op="set", key=key + ":brief", value="goes", ttl_s=1)
        time.sleep(1.5)  # past the ttl: the server expires it (no wall-clock assertion)
        assert self._call(conformance, op="get", key=key + ":brief") == {"value": None}
        assert self._call(conformance, op="get", key=key + ":kept") == {"value": "stays"}

    def test_cache_incr_is_atomic_under_concurrent_invocations(self, conformance: Harness) -> None:
        self.need(conformance, "invoke", "resource.cache")
        key = f"incr:{uuid.uuid4().hex[:10]}"
        callers, times = 6, 20
        with ThreadPoolExecutor(callers) as pool:
            results = list(
                pool.map(lambda _: self._call(conformance, op="incr", key=key, times=times), range(callers))
            )
        seen = sorted(v for r in results for v in r["values"])
        assert seen == list(range(1, callers * times + 1))  # every value once: none lost or repeated
