"""The local provider's config store: ``.sls-py/local/<stage>/config.json`` and
``secrets.json`` (mode 0600), through :class:`sls_py.configfile.FileConfigStore`.

``sls-py config set`` writes the files atomically; functions read them at call
time (their handle keeps values ``ttl_s`` seconds), so a running ``sls-py run``
serves a change without a restart. The server also watches the files and logs
which keys changed (never their values).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from pathlib import Path

from sls_py.configfile import ConfigFileError, FileConfigStore
from sls_py.errors import ConfigError
from sls_py.project import Project
from sls_py.provider import ConfigEntry
from sls_py.spec import Spec

#: How often ``sls-py run`` looks at the config files.
WATCH_PERIOD_S = 0.5


def stage_root(project: Project, stage: str) -> Path:
    """The stage's local state folder, ``.sls-py/local/<stage>``."""
    return project.state_dir / "local" / stage


def store(spec: Spec, project: Project) -> FileConfigStore:
    """The stage's config store."""
    return FileConfigStore(stage_root(project, spec.stage))


def _checked(call: Callable[[], object]) -> object:
    try:
        return call()
    except ConfigFileError as exc:
        raise ConfigError(str(exc)) from None


def get_entries(spec: Spec, project: Project, keys: list[str] | None, reveal: bool) -> list[ConfigEntry]:
    """The stage's entries (secrets' values only with ``reveal``), sorted by key."""
    st = store(spec, project)
    plain = _checked(st.plain)
    secrets = _checked(st.secrets)
    assert isinstance(plain, dict) and isinstance(secrets, dict)
    entries = [ConfigEntry(k, v, False) for k, v in plain.items()]
    entries += [ConfigEntry(k, v if reveal else None, True) for k, v in secrets.items()]
    wanted = set(keys) if keys is not None else None
    return sorted((e for e in entries if wanted is None or e.key in wanted), key=lambda e: e.key)


def set_entry(spec: Spec, project: Project, key: str, value: str, secret: bool) -> ConfigEntry:
    """Store ``key``; an existing secret stays one unless ``secret`` says so."""
    st = store(spec, project)
    secrets = _checked(st.secrets)
    assert isinstance(secrets, dict)
    if not secret and key in secrets:
        raise ConfigError(
            f"config key {key!r} of stage {spec.stage!r} is a secret",
            hint=f"pass --secret to change it, or `sls-py config unset {key}` first to make it plain",
        )
    _checked(lambda: st.set(key, value, secret))
    return ConfigEntry(key, None if secret else value, secret)


def unset_entries(spec: Spec, project: Project, keys: list[str]) -> list[str]:
    """Delete ``keys``; the ones that were set, sorted."""
    removed = _checked(lambda: store(spec, project).unset(keys))
    assert isinstance(removed, list)
    return removed


def _snapshot(st: FileConfigStore) -> dict[str, str] | None:
    try:
        return st.read()
    except (ConfigFileError, OSError):
        return None


async def watch_config(
    spec: Spec, project: Project, log: Callable[[str], None], stop: asyncio.Event
) -> None:
    """Log the keys whose values change while ``sls-py run`` serves (polls the files)."""
    st = store(spec, project)
    ttl = max((c.ttl_s for c in spec.configs), default=0)
    before = _snapshot(st)
    while not stop.is_set():
        try:
            await asyncio.wait_for(stop.wait(), WATCH_PERIOD_S)
            return
        except TimeoutError:
            pass
        now = _snapshot(st)
        if now is None or before is None or now == before:
            before = now if now is not None else before
            continue
        changed = sorted(k for k in {*before, *now} if before.get(k) != now.get(k))
        before = now
        log(
            f"config of stage {spec.stage} changed: {', '.join(changed)} "
            f"(functions see it within {ttl:g} s, no restart)"
        )
