"""API keys and usage limits of the local gateway.

Key values are generated once per stage (``secrets.token_urlsafe``) and kept in
``.sls-py/local/<stage>/api-keys.json`` (mode 0600), or set in config::

    [tool.sls-py.providers.local]
    api_keys = { default = "${env:MY_LOCAL_KEY}" }

Presented keys are compared with :func:`hmac.compare_digest` against every
key, so the time taken does not reveal which key (or how much of one) matched.
Usage limits (rate, burst, quota per period) are enforced per key with a token
bucket and a per-period counter, as an API Gateway usage plan would.
"""

from __future__ import annotations

import datetime as dt
import hmac
import json
import math
import os
import secrets
import time
from collections.abc import Callable
from pathlib import Path

from sls_py.errors import ConfigError
from sls_py.project import Project, resolve_environment
from sls_py.provider import ApiKey
from sls_py.spec import Spec, UsageSpec


def keys_file(project: Project, stage: str) -> Path:
    """Where the stage's generated key values are kept."""
    return project.state_dir / "local" / stage / "api-keys.json"


def load_api_keys(spec: Spec, project: Project) -> list[ApiKey]:
    """The stage's keys (names from the spec), creating missing values once."""
    configured = spec.provider_settings("local").get("api_keys", {})
    if not isinstance(configured, dict):
        raise ConfigError(
            "[tool.sls-py.providers.local] api_keys must be a table of name = value",
            hint='for example: api_keys = { default = "${env:MY_LOCAL_KEY}" }',
        )
    configured = resolve_environment({str(k): str(v) for k, v in configured.items()})
    path = keys_file(project, spec.stage)
    stored: dict[str, str] = {}
    if path.exists():
        try:
            stored = {str(k): str(v) for k, v in json.loads(path.read_text()).items()}
        except (ValueError, AttributeError):
            raise ConfigError(
                f"{path} is not a JSON object of key names to values",
                hint="delete it and new keys will be generated",
            ) from None
    keys = []
    changed = False
    for name in spec.gateway.api_keys:
        value = configured.get(name) or stored.get(name)
        if not value:
            value = secrets.token_urlsafe(32)
            changed = True
        if name not in configured:
            stored[name] = value
        keys.append(ApiKey(name=name, value=value))
    if changed:
        _write_private(path, json.dumps(stored, indent=2) + "\n")
    return keys


def _write_private(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` readable by the owner only."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(text)
    os.chmod(tmp, 0o600)
    os.replace(tmp, path)


class KeyChecker:
    """Finds which key of the stage, if any, a request presented."""

    def __init__(self, keys: list[ApiKey]) -> None:
        self._keys = [(k.name, k.value.encode()) for k in keys]

    def identify(self, presented: str | None) -> str | None:
        """The name of the key ``presented`` holds, compared in constant time."""
        if presented is None:
            return None
        given = presented.encode("latin-1", "replace")
        found = None
        for name, value in self._keys:
            if hmac.compare_digest(given, value) and found is None:
                found = name
        return found


class UsageLimiter:
    """Per-key token bucket (rate, burst) and quota per period."""

    def __init__(
        self,
        usage: UsageSpec | None,
        monotonic: Callable[[], float] = time.monotonic,
        wall: Callable[[], float] = time.time,
    ) -> None:
        self.usage = usage
        self._monotonic, self._wall = monotonic, wall
        self._buckets: dict[str, tuple[float, float]] = {}
        self._counts: dict[str, tuple[str, int]] = {}

    @property
    def active(self) -> bool:
        u = self.usage
        return u is not None and (u.rate is not None or u.quota is not None)

    def check(self, key: str) -> str | None:
        """``None`` if ``key`` may make a request now, else the 429 message."""
        u = self.usage
        if u is None:
            return None
        if u.quota is not None:
            period = self._period(u.period)
            seen_period, count = self._counts.get(key, (period, 0))
            if seen_period != period:
                count = 0
            if count >= u.quota:
                return "Limit Exceeded"
            self._counts[key] = (period, count + 1)
        if u.rate is not None:
            capacity = float(u.burst or max(1, math.ceil(u.rate)))
            now = self._monotonic()
            tokens, last = self._buckets.get(key, (capacity, now))
            tokens = min(capacity, tokens + (now - last) * u.rate)
            if tokens < 1:
                self._buckets[key] = (tokens, now)
                if u.quota is not None:  # a throttled request does not count
                    period, count = self._counts[key]
                    self._counts[key] = (period, count - 1)
                return "Too Many Requests"
            self._buckets[key] = (tokens - 1, now)
        return None

    def _period(self, period: str) -> str:
        day = dt.datetime.fromtimestamp(self._wall(), dt.UTC).date()
        if period == "DAY":
            return day.isoformat()
        if period == "WEEK":
            year, week, _ = day.isocalendar()
            return f"{year}-W{week:02d}"
        return f"{day.year}-{day.month:02d}"

    def describe(self) -> str:
        """The limits in words, for the start-up banner."""
        u = self.usage
        if u is None:
            return "none"
        parts = []
        if u.rate is not None:
            parts.append(f"rate {u.rate:g}/s, burst {u.burst or max(1, math.ceil(u.rate))}")
        if u.quota is not None:
            parts.append(f"quota {u.quota} per {u.period.lower()}")
        return ", ".join(parts) + " per key"
