"""The config hooks: ``sls-py config set|get|list|unset`` and ``remove
--purge-config`` call the chosen provider's hooks with the documented
arguments, and print what they return (secrets only with ``--reveal``).

The fake provider keeps a real store (a dict) and records every call.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from sls_py import hookimpl
from sls_py.provider import ConfigEntry, Plan, PlanStep, ProviderInfo
from sls_py.spec import CAPABILITIES

from .conftest import CliRunner, plugins_with, write_project

CONFIG_APP = """
from pydantic import BaseModel, Field
from sls_py import App

app = App("tiny")

class Settings(BaseModel):
    magic_word: str = Field(alias="magic-word")
    greeting: str = "hello"
    retries: int = 3

settings = app.config("settings", model=Settings, ttl_s=2)

@app.function(name="hello")
def hello(payload: dict, ctx) -> dict:
    return settings.load().model_dump()
"""


class StoreProvider:
    """A provider whose config store is a dict: ``{key: (value, secret)}``."""

    def __init__(self) -> None:
        self.store: dict[str, tuple[str, bool]] = {}
        self.calls: list[tuple[str, dict[str, Any]]] = []

    @hookimpl
    def sls_py_provider_info(self) -> ProviderInfo:
        return ProviderInfo(name="fake", version="1", capabilities=frozenset(CAPABILITIES))

    @hookimpl
    def sls_py_config_get(
        self, spec: Any, project: Any, keys: list[str] | None, reveal: bool
    ) -> list[ConfigEntry]:
        self.calls.append(("get", {"spec": spec, "project": project, "keys": keys, "reveal": reveal}))
        return [
            ConfigEntry(k, v if reveal or not s else None, s)
            for k, (v, s) in sorted(self.store.items())
            if keys is None or k in keys
        ]

    @hookimpl
    def sls_py_config_set(
        self, spec: Any, project: Any, key: str, value: str, secret: bool, ui: Any
    ) -> ConfigEntry:
        self.calls.append(("set", {"spec": spec, "project": project, "key": key, "value": value,
                                   "secret": secret, "ui": ui}))  # fmt: skip
        self.store[key] = (value, secret)
        return ConfigEntry(key, None if secret else value, secret)

    @hookimpl
    def sls_py_config_unset(self, spec: Any, project: Any, keys: list[str], ui: Any) -> list[str]:
        self.calls.append(("unset", {"spec": spec, "project": project, "keys": keys, "ui": ui}))
        return sorted(k for k in keys if self.store.pop(k, None) is not None)

    @hookimpl
    def sls_py_remove(self, spec: Any) -> Plan:
        return Plan([PlanStep("delete", "function", "hello", "gone")])


@pytest.fixture
def app_project(tmp_path: Path) -> Path:
    root = write_project(tmp_path / "tiny", CONFIG_APP)
    with (root / "pyproject.toml").open("a", encoding="utf-8") as f:
        f.write('\n[tool.sls-py.stages.dev.config]\ngreeting = "hi from dev"\n')
    return root


def _cli(run_cli: CliRunner, fake: StoreProvider, *argv: str, project: Path) -> Any:
    return run_cli(plugins_with(("fake", fake)), *argv, "--project", str(project), "--provider", "fake")


@pytest.mark.hook("sls_py_config_set")
def test_config_set_stores_a_value_and_a_secret(run_cli: CliRunner, app_project: Path) -> None:
    fake = StoreProvider()
    res = _cli(run_cli, fake, "config", "set", "magic-word", "s3cret", "--secret",
               "--stage", "prod", project=app_project)  # fmt: skip
    assert res.code == 0, res.err
    hook, kwargs = fake.calls[-1]
    assert (hook, sorted(kwargs)) == ("set", ["key", "project", "secret", "spec", "ui", "value"])
    assert (kwargs["key"], kwargs["value"], kwargs["secret"], kwargs["spec"].stage) == (
        "magic-word", "s3cret", True, "prod",
    )  # fmt: skip
    assert "s3cret" not in res.out + res.err  # the CLI never echoes a secret
    assert "Set secret magic-word of tiny stage prod (fake); functions see it within 2 s." in res.err
    assert fake.store == {"magic-word": ("s3cret", True)}


def test_config_set_refuses_a_bad_key_before_any_hook(run_cli: CliRunner, app_project: Path) -> None:
    fake = StoreProvider()
    res = _cli(run_cli, fake, "config", "set", "no spaces", "x", project=app_project)
    assert (res.code, res.err.splitlines()[0]) == (2, "error: config key 'no spaces' is not valid")
    assert fake.calls == []


@pytest.mark.hook("sls_py_config_get")
def test_config_get_and_list_mask_secrets_unless_revealed(
    run_cli: CliRunner, app_project: Path
) -> None:
    fake = StoreProvider()
    fake.store = {"magic-word": ("s3cret", True), "retries": ("5", False)}
    res = _cli(run_cli, fake, "config", "get", "retries", project=app_project)
    assert (res.code, res.out) == (0, "5\n")
    hook, kwargs = fake.calls[-1]
    assert (hook, sorted(kwargs), kwargs["keys"], kwargs["reveal"]) == (
        "get", ["keys", "project", "reveal", "spec"], ["retries"], False,
    )  # fmt: skip

    res = _cli(run_cli, fake, "config", "get", "magic-word", project=app_project)
    assert (res.code, res.out, res.err.splitlines()) == (
        2,
        "",
        [
            "error: config key 'magic-word' of stage 'dev' is a secret",
            "hint: add --reveal to print it: `sls-py config get magic-word --reveal --stage dev`",
        ],
    )
    res = _cli(run_cli, fake, "config", "get", "magic-word", "--reveal", project=app_project)
    assert (res.code, res.out, fake.calls[-1][1]["reveal"]) == (0, "s3cret\n", True)

    res = _cli(run_cli, fake, "config", "list", project=app_project)
    assert (res.code, res.out.splitlines()) == (
        0,
        [
            "greeting\thi from dev\t(default)",
            "magic-word\t********\t(secret)",
            "retries\t5",
        ],
    )
    assert fake.calls[-1][1]["keys"] is None
    res = _cli(run_cli, fake, "config", "list", "--json", "--reveal", project=app_project)
    assert json.loads(res.out) == [
        {"key": "greeting", "value": "hi from dev", "secret": False, "source": "default"},
        {"key": "magic-word", "value": "s3cret", "secret": True, "source": "store"},
        {"key": "retries", "value": "5", "secret": False, "source": "store"},
    ]


def test_config_get_of_an_unset_key_names_the_fix(run_cli: CliRunner, app_project: Path) -> None:
    res = _cli(run_cli, StoreProvider(), "config", "get", "magic-word", "--stage", "prod",
               project=app_project)  # fmt: skip
    assert (res.code, res.err.splitlines()) == (
        2,
        [
            "error: config key 'magic-word' is not set for stage 'prod'",
            "hint: set it with `sls-py config set magic-word VALUE --stage prod`",
        ],
    )
    res = _cli(run_cli, StoreProvider(), "config", "list", "--stage", "prod", project=app_project)
    assert res.out.splitlines() == [
        "greeting\t(not set)",
        "magic-word\t(not set)",
        "retries\t(not set)",
    ]


@pytest.mark.hook("sls_py_config_unset")
def test_config_unset_deletes_and_refuses_unknown_keys(run_cli: CliRunner, app_project: Path) -> None:
    fake = StoreProvider()
    fake.store = {"magic-word": ("s3cret", True), "retries": ("5", False)}
    res = _cli(run_cli, fake, "config", "unset", "retries", project=app_project)
    assert res.code == 0, res.err
    hook, kwargs = fake.calls[-1]
    assert (hook, sorted(kwargs), kwargs["keys"]) == ("unset", ["keys", "project", "spec", "ui"], ["retries"])
    assert fake.store == {"magic-word": ("s3cret", True)}
    res = _cli(run_cli, fake, "config", "unset", "retries", project=app_project)
    assert (res.code, res.err.splitlines()) == (
        2,
        [
            "error: config key 'retries' is not set for stage 'dev'",
            "hint: keys set for stage dev: magic-word",
        ],
    )


def test_remove_keeps_config_unless_purged(run_cli: CliRunner, app_project: Path) -> None:
    fake = StoreProvider()
    fake.store = {"magic-word": ("s3cret", True), "retries": ("5", False)}
    res = _cli(run_cli, fake, "remove", project=app_project)
    assert res.code == 0, res.err
    assert fake.store.keys() == {"magic-word", "retries"}
    assert "kept 2 config key(s) of stage dev (magic-word, retries)" in res.err
    res = _cli(run_cli, fake, "remove", "--purge-config", "--json", project=app_project)
    assert (res.code, json.loads(res.out)["config_deleted"]) == (0, ["magic-word", "retries"])
    assert fake.store == {}
    assert fake.calls[-1] == ("unset", {**fake.calls[-1][1], "keys": ["magic-word", "retries"]})


def test_providers_lists_the_config_commands(run_cli: CliRunner) -> None:
    res = run_cli(plugins_with(("fake", StoreProvider())), "providers", "--json")
    listing = json.loads(res.out)["providers"][0]
    assert listing["commands"] == ["remove", "config get/list", "config set", "config unset"]
