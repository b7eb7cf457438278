"""The spec's part for ``app.config(...)``: handles, the keys their models read,
and the stage's defaults from ``pyproject.toml``::

    [tool.sls-py.config]                 # every stage
    greeting = "hello"

    [tool.sls-py.stages.dev.config]      # this stage (wins)
    magic-word = "clonezero-token"

Defaults are for values that may sit in git (they appear in ``sls-py spec``);
secrets are set with ``sls-py config set KEY VALUE --secret`` and live only in
the provider's store.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from .errors import ConfigError, SpecError
from .runtime.config import model_keys, valid_key
from .spec import ConfigSpec

if TYPE_CHECKING:
    from .app import App
    from .config import Project


def _text(value: str | int | float | bool) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def stage_defaults(project: Project, stage: str) -> dict[str, str]:
    """The stage's config defaults: ``[tool.sls-py.config]`` under ``[tool.sls-py.stages.S.config]``."""
    conf = project.config
    st = conf.stages.get(stage)
    merged = {**conf.config, **(st.config if st is not None else {})}
    for key in merged:
        if not valid_key(key):
            raise ConfigError(
                f"{project.pyproject}: config key {key!r} is not valid",
                hint="use letters, digits, '-', '_' and '.', starting with a letter or digit",
            )
    return {k: _text(v) for k, v in merged.items()}


def config_specs(project: Project, app: App, stage: str) -> list[ConfigSpec]:
    """One :class:`ConfigSpec` per ``app.config(...)`` handle, for ``stage``."""
    if not app.configs:
        return []
    defaults = stage_defaults(project, stage)
    out = []
    for name, decl in app.configs.items():
        model = decl.model
        if model is not None and not hasattr(model, "model_fields"):
            raise SpecError(
                f"config {name!r}: model {model!r} is not a pydantic model",
                hint="pass a pydantic BaseModel subclass (or no model, for plain get())",
            )
        keys = model_keys(model) if model is not None else []
        bad = [k for k in keys if not valid_key(k)]
        if bad:
            raise SpecError(
                f"config {name!r}: field key {bad[0]!r} is not a valid config key",
                hint="give the field an alias made of letters, digits, '-', '_' and '.'",
            )
        out.append(ConfigSpec(name=name, ttl_s=decl.ttl_s, keys=keys, defaults=defaults))
    return out
