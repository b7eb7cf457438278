"""Which functions share a template process.

Functions whose environments are equal but for what each worker sets for itself
(:data:`PER_FUNCTION_KEYS`, and the ``"functions"`` entry of
``SLS_PY_RESOURCES``: the targets a function may invoke) share one template:
it imports the app once, with none of those keys, and forks the workers of
each (see :mod:`.template`). The user's ``environment`` of a function must be
equal too: the app may read ``os.environ`` at import time, which happens in the
template. Used by :func:`.launch.template_groups` (the whole environments) and
by the early start (:mod:`.blank`, the part the spec decides), so both find the
same groups.

Standard library only.
"""

from __future__ import annotations

import json

#: what a worker of a shared template sets for itself (from the ``spawn`` message);
#: the invoke endpoint's are .invoking's INVOKE_URL_ENV and INVOKE_TOKEN_ENV
PER_FUNCTION_KEYS = ("SLS_PY_FUNCTION", "SLS_PY_MEMORY_MB", "SLS_PY_INVOKE_URL", "SLS_PY_INVOKE_TOKEN")
#: the functions a shared template serves (a JSON list), in its environment
FUNCTIONS_ENV = "SLS_PY_FUNCTIONS"


def shared_environment(env: dict[str, str]) -> dict[str, str]:
    """``env`` without what a worker sets for its own function: the part that must be
    equal for two functions to share a template (the app is imported with it)."""
    out = {k: v for k, v in env.items() if k not in PER_FUNCTION_KEYS}
    raw = out.get("SLS_PY_RESOURCES")
    if raw:
        resources = json.loads(raw)
        if "functions" in resources:
            del resources["functions"]
            out["SLS_PY_RESOURCES"] = json.dumps(resources)
    return out


def groups(envs: dict[str, dict[str, str]], share: bool = True) -> list[list[str]]:
    """The functions of ``envs`` (name -> environment, in the spec's order) by the
    template they share, in the order of their first function; with ``share``
    false, each function alone."""
    by_env: dict[tuple[tuple[str, str], ...], list[str]] = {}
    for name, env in envs.items():
        key = tuple(sorted(shared_environment(env).items())) if share else (("", name),)
        by_env.setdefault(key, []).append(name)
    return list(by_env.values())


def template_environment(names: list[str], env: dict[str, str]) -> dict[str, str]:
    """The environment of the template of ``names`` (``env``: the first one's): the
    function's own for a group of one, else the shared part and the names."""
    if len(names) == 1:
        return env
    return {**shared_environment(env), FUNCTIONS_ENV: json.dumps(names)}


def template_name(env: dict[str, str]) -> str:
    """The first function a template with environment ``env`` serves (its group's name)."""
    shared = env.get(FUNCTIONS_ENV)
    if shared:
        return str(json.loads(shared)[0])
    return env.get("SLS_PY_FUNCTION", "")


def sharing_on(settings: dict[str, object]) -> bool:
    """Whether ``[tool.sls-py.providers.local]`` (as the spec holds it) lets
    functions share templates (``share_templates``, on by default)."""
    return settings.get("share_templates") is not False
