"""Config and secrets as a function reads them: ``app.config("settings")``.

A stage's config is a set of string values by key, kept by the provider
(locally a file per stage, on AWS SSM Parameter Store) and changed with
``sls-py config set KEY VALUE --stage S`` while the app runs. A handle reads
the values at call time and keeps them for ``ttl_s`` seconds, so a change is
seen within that time, without a deploy::

    settings = app.config("settings", model=Settings, ttl_s=5)

    def handler(payload, ctx):
        word = settings.get("magic-word")          # a str
        typed = settings.load()                    # a validated Settings

Where a value comes from, first match wins: the stage's store, the stage's
defaults in ``pyproject.toml`` (``[tool.sls-py.stages.NAME.config]``), the
``default`` given to :meth:`Config.get` (or the model field's default), else
:class:`ConfigMissing`, whose message names the command that sets the key.

Values never appear in a handle's ``repr`` or in sls-py's logs; declare
secrets as ``pydantic.SecretStr`` in the model so the loaded model does not
print them either. Only the standard library is imported here (pydantic only
when :meth:`Config.load` validates a model).
"""

from __future__ import annotations

import os
import threading
import time

from .resources import ResourceError, _current

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing (cold start)
if TYPE_CHECKING:
    from typing import Any

    from .drivers import ConfigDriver

_MISSING: Any = object()
_KEY_CHARS = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_.-")


def valid_key(key: object) -> bool:
    """Whether ``key`` is a config key: letters, digits, ``_ . -``, starting with a
    letter or digit, 1-128 characters (SSM parameter names allow all of these).
    Checked without ``re``, which a function need not import."""
    return (
        isinstance(key, str)
        and 0 < len(key) <= 128
        and key[0].isascii()
        and key[0].isalnum()
        and all(c in _KEY_CHARS for c in key)
    )


def check_key(key: str) -> str:
    """Return ``key`` if it is a valid config key; raise :class:`ConfigKeyError` saying why not."""
    if not valid_key(key):
        raise ConfigKeyError(
            f"config key {key!r} is not valid: use letters, digits, '-', '_' and '.', "
            "starting with a letter or digit, at most 128 characters"
        )
    return key


def set_command(key: str, stage: str | None = None) -> str:
    """The command that sets ``key`` (for messages)."""
    stage = stage or os.environ.get("SLS_PY_STAGE") or "STAGE"
    return f"sls-py config set {key} VALUE --stage {stage}"


class ConfigKeyError(ResourceError, ValueError):
    """A config key that is not valid."""


class ConfigMissing(ResourceError, KeyError):
    """A config key that is not set for the stage and has no default."""

    def __init__(self, keys: list[str], stage: str | None = None) -> None:
        self.keys = keys
        stage = stage or os.environ.get("SLS_PY_STAGE") or "STAGE"
        self.stage = stage
        names = ", ".join(repr(k) for k in keys)
        what = "config key {} is" if len(keys) == 1 else "config keys {} are"
        commands = "; ".join(f"`{set_command(k, stage)}`" for k in keys)
        self.message = (
            f"{what.format(names)} not set for stage {stage!r} and has no default: run {commands}"
        )
        super().__init__(self.message)

    def __str__(self) -> str:
        return self.message


class ConfigInvalid(ResourceError, ValueError):
    """Config values that do not validate against the handle's model."""


def _field_key(name: str, field: Any) -> str:
    """The config key of a model field: its alias, else its name with ``_`` as ``-``."""
    alias = getattr(field, "alias", None)
    return str(alias) if alias else name.replace("_", "-")


def model_keys(model: Any) -> list[str]:
    """The config keys a pydantic model's fields read, in field order."""
    fields = getattr(model, "model_fields", None) or {}
    return [_field_key(name, field) for name, field in fields.items()]


class Config:
    """A handle on the stage's config: :meth:`get` a value, :meth:`load` a model.

    :param name: the handle's name (it labels the handle in the spec; every
        handle of an app reads the same per-stage store).
    :param model: a pydantic model whose fields are config keys (field
        ``magic_word`` reads key ``magic-word``; an alias names the key).
    :param ttl_s: how long values are kept before they are read again; ``0``
        reads the store on every call.
    """

    kind = "config"

    def __init__(self, name: str, model: Any = None, ttl_s: float = 5.0) -> None:
        if ttl_s < 0:
            raise ValueError(f"config {name!r}: ttl_s must be >= 0, got {ttl_s!r}")
        self.name = name
        self.model = model
        self.ttl_s = float(ttl_s)
        self._lock = threading.Lock()
        self._values: dict[str, str] | None = None
        self._read_at = 0.0
        self._source: object = None

    def _store(self) -> tuple[object, ConfigDriver, dict[str, str]]:
        driver, names = _current()
        factory = getattr(driver, "config", None)
        if factory is None:
            raise ResourceError(
                f"the provider's resource driver {type(driver).__name__} does not support config "
                "(it has no config(name, physical) method)"
            )
        physical = names.get("configs", {}).get(self.name, self.name)
        return driver, factory(self.name, physical), dict(names.get("config_defaults", {}))

    def values(self) -> dict[str, str]:
        """Every value set for the stage (store over defaults), at most ``ttl_s`` old."""
        driver, _ = _current()
        with self._lock:
            now = time.monotonic()
            fresh = (
                self._values is not None
                and self._source is driver
                and now - self._read_at < self.ttl_s
            )
            if not fresh:
                source, store, defaults = self._store()
                self._values = {**defaults, **store.read()}
                self._read_at = time.monotonic()
                self._source = source
            assert self._values is not None
            return dict(self._values)

    def refresh(self) -> None:
        """Forget the kept values: the next call reads the store."""
        with self._lock:
            self._values = None

    def get(self, key: str, default: Any = _MISSING) -> Any:
        """The value of ``key`` (a ``str``), else ``default``; :class:`ConfigMissing`
        when it is not set and no default is given."""
        check_key(key)
        values = self.values()
        if key in values:
            return values[key]
        if default is not _MISSING:
            return default
        raise ConfigMissing([key])

    def load(self) -> Any:
        """The values validated into the handle's model (a ``dict`` without one).

        :raises ConfigMissing: a required field's key is not set.
        :raises ConfigInvalid: a value does not validate (the message names the
            key, never the value).
        """
        values = self.values()
        if self.model is None:
            return values
        from pydantic import ValidationError

        fields = self.model.model_fields
        data = {}
        for name, field in fields.items():
            key = _field_key(name, field)
            if key in values:
                data[field.alias or name] = values[key]
        missing = [
            _field_key(n, f)
            for n, f in fields.items()
            if f.is_required() and _field_key(n, f) not in values
        ]
        if missing:
            raise ConfigMissing(missing)
        try:
            return self.model.model_validate(data)
        except ValidationError as exc:
            keys = {str(e["loc"][0]): e["msg"] for e in exc.errors(include_url=False) if e["loc"]}
            by_key = {
                _field_key(n, f): keys.get(f.alias or n) or keys.get(n)
                for n, f in fields.items()
            }
            problems = "; ".join(f"{k}: {m}" for k, m in by_key.items() if m)
            raise ConfigInvalid(
                f"config {self.name!r}: {problems or exc.error_count()} "
                f"(fix it with `{set_command(next((k for k, m in by_key.items() if m), 'KEY'))}`)"
            ) from None

    def __repr__(self) -> str:
        return f"Config({self.name!r}, ttl_s={self.ttl_s:g})"


# --- an in-memory config, for unit tests ------------------------------------------


class MemoryConfig:
    """Config values held in a dict (what :class:`~sls_py.runtime.MemoryDriver` gives)."""

    def __init__(self, values: dict[str, str]) -> None:
        self.store = values

    def read(self) -> dict[str, str]:
        return dict(self.store)
