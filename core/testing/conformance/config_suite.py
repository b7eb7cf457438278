"""The conformance suite's config section (``resource.config``).

A provider that declares ``resource.config`` keeps a per-stage store that
``sls-py config set`` writes and functions read at call time through
``app.config(...)``. These checks use the conformance app's ``config-read``
function (``settings = app.config("settings", ttl_s=1)``) and the harness's
``config_set`` / ``config_get`` / ``config_unset`` (the provider's hooks):

- a value set reaches a function; a change reaches a *warm* function (the
  same process, over HTTP when the provider serves it) within the TTL, with
  no deploy, and ``plan`` still has nothing to do;
- an unset key falls back to the stage's default from ``pyproject.toml``,
  then to ``get``'s default; with neither, the error names
  ``sls-py config set``;
- a secret is masked unless revealed, reaches the function, and never
  appears in ``sls-py spec``.

Keys carry a run id, so runs against a long-lived store do not collide.
"""

from __future__ import annotations

import contextlib
import json
import subprocess
import sys
import time
import uuid
from typing import TYPE_CHECKING, Any

from ...errors import NotSupported

if TYPE_CHECKING:
    from .harness import Harness

_JSON = {"content-type": "application/json"}
#: Longest wait for a change to reach a warm function: the app's TTL (1 s) plus
#: slack for slow machines and emulators.
CHANGE_TIMEOUT_S = 15.0


class ConfigConformance:
    """The ``resource.config`` checks; :class:`ProviderConformance` includes them."""

    def need(self, harness: Harness, *capabilities: str) -> None:  # overridden by the suite
        raise NotImplementedError

    def _read(self, harness: Harness, key: str, warm: bool = False, **extra: Any) -> Any:
        """``config-read`` for ``key``: over HTTP when ``warm`` and served, else invoked."""
        payload = {"key": key, **extra}
        if warm and "trigger.http" in harness.info().capabilities:
            r = harness.http("POST", "/config-read", _JSON, json.dumps(payload).encode())
            assert r.status == 200, (r.status, r.body)
            return r.json()
        inv = harness.invoke("config-read", payload)
        assert inv.error is None, inv.error
        return inv.result

    def _eventually(
        self, harness: Harness, key: str, expected: Any, warm: bool = False, **extra: Any
    ) -> Any:
        """Read ``key`` until it is ``expected`` (a warm function keeps values for its
        TTL, 1 s here), for at most :data:`CHANGE_TIMEOUT_S`; the last answer."""
        deadline = time.monotonic() + CHANGE_TIMEOUT_S
        while True:
            try:
                seen = self._read(harness, key, warm, **extra)
            except AssertionError:  # not yet set where the function looks: a function error
                if time.monotonic() > deadline:
                    raise
                seen = None
            if (seen is not None and seen["value"] == expected) or time.monotonic() > deadline:
                assert seen is not None
                return seen
            time.sleep(0.25)

    def _key(self) -> str:
        return f"conf-{uuid.uuid4().hex[:8]}"

    def test_config_value_reaches_the_function(self, conformance: Harness) -> None:
        self.need(conformance, "resource.config", "invoke")
        key = self._key()
        entry = conformance.config_set(key, "first value")
        assert (entry.key, entry.value, entry.secret) == (key, "first value", False)
        assert [(e.key, e.value, e.secret) for e in conformance.config_get([key])] == [
            (key, "first value", False)
        ]
        assert self._eventually(conformance, key, "first value")["value"] == "first value"
        assert conformance.config_unset([key]) == [key]
        assert conformance.config_get([key]) == []

    def test_config_change_is_seen_without_redeploy(self, conformance: Harness) -> None:
        """A warm function sees a new value within its handle's TTL; nothing is redeployed."""
        self.need(conformance, "resource.config", "invoke")
        key = self._key()
        conformance.config_set(key, "before")
        assert self._eventually(conformance, key, "before", warm=True)["value"] == "before"
        conformance.config_set(key, "after")
        seen = self._eventually(conformance, key, "after", warm=True)
        assert seen["value"] == "after", f"still {seen['value']!r} after {CHANGE_TIMEOUT_S:g} s"
        with contextlib.suppress(NotSupported):  # no deploy was needed, none is pending
            assert conformance.plan().steps == []
        conformance.config_unset([key])

    def test_config_defaults_and_missing_key(self, conformance: Harness) -> None:
        self.need(conformance, "resource.config", "invoke")
        name = "conformance-default"
        assert self._eventually(conformance, name, "from pyproject")["value"] == "from pyproject"
        conformance.config_set(name, "from the store")
        try:
            assert self._eventually(conformance, name, "from the store")["value"] == "from the store"
        finally:
            conformance.config_unset([name])
        assert self._eventually(conformance, name, "from pyproject")["value"] == "from pyproject"
        key = self._key()
        got = self._read(conformance, key, default="from code", has_default=True)
        assert got["value"] == "from code"
        inv = conformance.invoke("config-read", {"key": key})
        assert inv.error is not None and inv.error.type == "ConfigMissing"
        assert f"sls-py config set {key} VALUE --stage conformance" in inv.error.message

    def test_config_secret_is_masked_and_never_in_the_spec(self, conformance: Harness) -> None:
        self.need(conformance, "resource.config", "invoke")
        key, secret = self._key(), f"s3cret-{uuid.uuid4().hex}"
        entry = conformance.config_set(key, secret, secret=True)
        assert (entry.key, entry.value, entry.secret) == (key, None, True)
        try:
            masked = conformance.config_get([key])
            assert [(e.key, e.value, e.secret) for e in masked] == [(key, None, True)]
            revealed = conformance.config_get([key], reveal=True)
            assert [(e.key, e.value, e.secret) for e in revealed] == [(key, secret, True)]
            assert self._eventually(conformance, key, secret)["value"] == secret
            project = getattr(conformance, "project", None)
            if project is not None:
                spec = subprocess.run(
                    [sys.executable, "-m", "sls_py", "spec", "--project", str(project.root),
                     "--stage", "conformance"],
                    capture_output=True, text=True, timeout=60,
                )  # fmt: skip
                assert spec.returncode == 0, spec.stderr
                assert key not in spec.stdout and secret not in spec.stdout
        finally:
            conformance.config_unset([key])
