"""Plugin loading and calling, with fake providers registered in-process."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from sls_py import hookimpl
from sls_py.cli import main
from sls_py.config import Project, load_project
from sls_py.errors import CapabilityError, PluginError
from sls_py.plugins import Plugins, load_plugins
from sls_py.provider import Invocation, Plan, PlanStep, ProviderInfo
from sls_py.spec import CAPABILITIES, Spec


class FakeProvider:
    """A provider that records what the hooks receive."""

    def __init__(self, name: str = "fake", capabilities: set[str] | None = None) -> None:
        self.name = name
        self.capabilities = frozenset(CAPABILITIES if capabilities is None else capabilities)
        self.calls: list[tuple[str, Any]] = []

    @hookimpl
    def sls_py_provider_info(self) -> ProviderInfo:
        return ProviderInfo(name=self.name, version="9.9", capabilities=self.capabilities)

    @hookimpl
    def sls_py_validate_spec(self, spec: Spec) -> list[str]:  # takes fewer args than the spec
        self.calls.append(("validate", spec.app))
        return ["fake warning"]

    @hookimpl
    def sls_py_invoke(self, spec: Spec, project: Project, function: str, payload: Any) -> Invocation:
        self.calls.append(("invoke", (spec.stage, function, payload)))
        return Invocation(function=function, result={"echo": payload})

    @hookimpl
    def sls_py_plan(self, spec: Spec) -> Plan:
        self.calls.append(("plan", spec.stage))
        return Plan([PlanStep("create", "function", spec.qualified(f.name), "new") for f in spec.functions])


def plugins_with(*providers: FakeProvider) -> Plugins:
    plugins = Plugins.empty()
    for p in providers:
        plugins.register(p.name, p)
    return plugins


def test_fake_provider_receives_the_spec_through_the_hooks(work_magic: Path) -> None:
    fake = FakeProvider()
    provider = plugins_with(fake).provider("fake")
    project = load_project(work_magic)
    spec = project.spec("dev")
    assert provider.check(spec, project) == ["fake warning"]
    result = provider.call(
        "sls_py_invoke", spec=spec, project=project, function="work-magic", payload=[1], logs=False, ui=None
    )
    assert result == Invocation(function="work-magic", result={"echo": [1]})
    assert fake.calls == [("validate", "clonezero"), ("invoke", ("dev", "work-magic", [1]))]


def test_missing_capability_is_refused_before_any_hook_runs(work_magic: Path) -> None:
    fake = FakeProvider(capabilities={"invoke", "function.timeout", "function.memory", "trigger.http"})
    project = load_project(work_magic)
    with pytest.raises(CapabilityError) as err:
        plugins_with(fake).provider("fake").check(project.spec(), project)
    assert err.value.message == (
        "provider 'fake' does not support API keys on HTTP routes (route POST /work-magic); "
        "CORS on HTTP routes (route POST /work-magic); "
        "upload (storage) triggers (function 'catalog-upload'); "
        "functions invoking declared targets (ctx.invoke, ctx.invoke_async, fan-out) "
        "(function 'nightly-report', which invokes count-chunk); "
        "schedule triggers (function 'nightly-report'); "
        "buckets (bucket 'uploads'); key-value tables (table 'sls-py-fanout'); "
        "caches (Redis protocol) (cache 'spells'); "
        "SQL databases (PostgreSQL, :name parameters) (database 'catalog'); "
        "per-stage config and secrets, read at call time (config 'settings')"
    )
    assert fake.calls == []


def test_capability_refusal_through_the_cli_runs_no_hook(
    work_magic: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    fake = FakeProvider(capabilities={"function.timeout", "function.memory"})
    code = main(
        ["invoke", "work-magic", "{}", "--project", str(work_magic), "--provider", "fake"],
        plugins=plugins_with(fake),
    )
    assert code == 2
    err = capsys.readouterr().err
    assert err.startswith("error: provider 'fake' does not support HTTP routes")
    assert fake.calls == []


def test_only_the_chosen_provider_is_called(work_magic: Path) -> None:
    one, two = FakeProvider("one"), FakeProvider("two")
    plugins = plugins_with(one, two)
    project = load_project(work_magic)
    plan = plugins.provider("two").call("sls_py_plan", spec=project.spec("prod"), project=project, ui=None)
    assert [s.name for s in plan.steps] == [
        "clonezero-prod-work-magic",
        "clonezero-prod-catalog-upload",
        "clonezero-prod-nightly-report",
        "clonezero-prod-spell-counts",
        "clonezero-prod-count-chunk",
    ]
    assert (one.calls, two.calls) == ([], [("plan", "prod")])


def test_unimplemented_command_says_so(work_magic: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code = main(
        ["deploy", "--project", str(work_magic), "--provider", "fake"], plugins=plugins_with(FakeProvider())
    )
    assert code == 2
    assert capsys.readouterr().err.splitlines()[-2:] == [
        "error: provider 'fake' does not implement `deploy`",
        "hint: commands 'fake' supports: invoke, plan",
    ]


def test_unknown_provider_lists_installed_ones(work_magic: Path) -> None:
    with pytest.raises(PluginError) as err:
        plugins_with(FakeProvider("one")).provider("gcp")
    assert err.value.message == "no provider named 'gcp' is installed"
    assert err.value.hint == "installed providers: one; see `sls-py providers`"


def test_plugin_with_unknown_hook_is_refused() -> None:
    class Typo:
        @hookimpl
        def sls_py_deplyo(self) -> None: ...

    plugins = Plugins.empty()
    with pytest.raises(PluginError) as err:
        plugins.register("typo", Typo())
    assert "plugin 'typo' implements an unknown hook" in err.value.message
    assert plugins.providers() == {}


def test_unknown_capability_makes_a_provider_broken() -> None:
    bad = FakeProvider("bad", capabilities={"teleport"})
    with pytest.raises(PluginError) as err:
        plugins_with(bad).providers()
    assert err.value.message == "plugin 'bad' declares unknown capabilities: ['teleport']"


def test_builtin_providers_come_through_entry_points() -> None:
    found = load_plugins(disabled=[]).providers()
    assert {"local", "aws"} <= set(found)
    assert found["local"].info.version


def test_disabling_a_plugin_by_name() -> None:
    found = load_plugins(disabled=["aws"]).providers()
    assert "aws" not in found and "local" in found
