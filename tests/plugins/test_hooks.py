"""One test per hook: the CLI calls the chosen provider's hook with the
documented arguments and shows what it returns.

Every test here is marked ``@pytest.mark.hook(NAME)``; ``test_docs.py`` fails
when a hook in ``sls_py/hookspecs.py`` has no such test.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from sls_py import hookimpl
from sls_py.errors import SpecError
from sls_py.provider import (
    ApiKey,
    DeployResult,
    Invocation,
    LogRecord,
    Plan,
    PlanStep,
    ProviderInfo,
    RunOptions,
    TriggerRequest,
)
from sls_py.runtime import ErrorInfo

from .conftest import CliRunner, Recorder, plugins_with, recording_plugin


def _setup(**answers: Any) -> tuple[Recorder, Any]:
    rec = Recorder(answers=dict(answers))
    return rec, plugins_with(("fake", recording_plugin(rec)))


def _names(kwargs: dict[str, Any]) -> list[str]:
    return sorted(kwargs)


@pytest.mark.hook("sls_py_provider_info")
def test_provider_info_is_listed(run_cli: CliRunner) -> None:
    rec, plugins = _setup()
    res = run_cli(plugins, "providers", "--json")
    assert res.code == 0, res.err
    assert json.loads(res.out) == {
        "providers": [
            {
                "name": "fake",
                "version": "9.9",
                "description": "",
                "capabilities": sorted(rec.capabilities),
                "not_emulated": [],
                "commands": [
                    "invoke",
                    "run",
                    "plan",
                    "deploy",
                    "remove",
                    "url",
                    "logs",
                    "api-keys",
                    "trigger",
                    "migrate",
                    "db shell",
                ],
                "plugin": "fake",
            }
        ],
        "broken": [],
    }


@pytest.mark.hook("sls_py_validate_spec")
def test_validate_spec_warns_then_the_command_runs(run_cli: CliRunner, project: Path) -> None:
    rec, plugins = _setup(
        sls_py_validate_spec=["hello has no alarm"],
        sls_py_invoke=lambda **kw: Invocation("hello", result={"ok": True}),
    )
    res = run_cli(plugins, "invoke", "hello", "--project", str(project), "--provider", "fake")
    assert (res.code, res.out) == (0, '{"ok": true}\n')
    assert "warning: hello has no alarm" in res.err
    assert rec.hooks_called() == ["sls_py_validate_spec", "sls_py_invoke"]
    assert _names(rec.calls[0][1]) == ["project", "spec"]


@pytest.mark.hook("sls_py_validate_spec")
def test_validate_spec_refusal_stops_before_the_command(run_cli: CliRunner, project: Path) -> None:
    def refuse(**kw: Any) -> list[str]:
        raise SpecError("timeout too long for fake", hint="lower timeout_s")

    rec, plugins = _setup(sls_py_validate_spec=refuse)
    res = run_cli(plugins, "deploy", "--project", str(project), "--provider", "fake")
    assert (res.code, res.out) == (2, "")
    assert res.err.splitlines()[-2:] == [
        "error: timeout too long for fake",
        "hint: lower timeout_s",
    ]
    assert rec.hooks_called() == ["sls_py_validate_spec"]


@pytest.mark.hook("sls_py_invoke")
def test_invoke_gets_function_and_payload(run_cli: CliRunner, project: Path) -> None:
    rec, plugins = _setup(
        sls_py_invoke=lambda **kw: Invocation(
            kw["function"], result={"hello": kw["payload"]["name"]}
        )
    )
    res = run_cli(
        plugins,
        "invoke",
        "hello",
        '{"name": "you"}',
        "--project",
        str(project),
        "--provider",
        "fake",
    )
    assert (res.code, res.out) == (0, '{"hello": "you"}\n')
    hook, kw = rec.calls[-1]
    assert (hook, _names(kw)) == (
        "sls_py_invoke",
        ["function", "logs", "payload", "project", "spec", "ui"],
    )
    assert (kw["function"], kw["payload"], kw["logs"], kw["spec"].stage, kw["project"].root) == (
        "hello",
        {"name": "you"},
        False,
        "dev",
        project.resolve(),
    )


@pytest.mark.hook("sls_py_invoke")
def test_invoke_function_error_is_data_and_exit_1(run_cli: CliRunner, project: Path) -> None:
    _, plugins = _setup(
        sls_py_invoke=lambda **kw: Invocation(
            "hello", error=ErrorInfo("HttpError", "nope", status=403)
        )
    )
    res = run_cli(
        plugins, "invoke", "hello", "--project", str(project), "--provider", "fake", "--json"
    )
    assert res.code == 1
    assert json.loads(res.out) == {
        "function": "hello",
        "request_id": "",
        "result": None,
        "error": {
            "type": "HttpError",
            "message": "nope",
            "status": 403,
            "traceback": [],
            "details": None,
        },
    }
    assert res.err.strip() == "hello failed: HttpError (status 403): nope"


@pytest.mark.hook("sls_py_invoke")
def test_implementation_with_fewer_arguments_still_works(run_cli: CliRunner, project: Path) -> None:
    """Hooks only grow: an implementation taking a subset of the arguments gets those."""
    seen: list[tuple[str, Any]] = []

    class Old:
        @hookimpl
        def sls_py_provider_info(self) -> ProviderInfo:
            return ProviderInfo("old", "1.0", capabilities=frozenset(Recorder().capabilities))

        @hookimpl
        def sls_py_invoke(self, function: str, payload: Any) -> Invocation:
            seen.append((function, payload))
            return Invocation(function, result=payload)

        @hookimpl
        def sls_py_url(self, spec: Any) -> str:
            return f"https://{spec.app}.old.example"

    plugins = plugins_with(("old", Old()))
    res = run_cli(
        plugins, "invoke", "hello", "[1, 2]", "--project", str(project), "--provider", "old"
    )
    assert (res.code, res.out, seen) == (0, "[1, 2]\n", [("hello", [1, 2])])
    res = run_cli(plugins, "url", "--project", str(project), "--provider", "old")
    assert (res.code, res.out) == (0, "https://tiny.old.example\n")


@pytest.mark.hook("sls_py_run")
def test_run_gets_options_and_its_exit_code_is_used(run_cli: CliRunner, project: Path) -> None:
    rec, plugins = _setup(sls_py_run=3)
    res = run_cli(
        plugins,
        "run",
        "--project",
        str(project),
        "--provider",
        "fake",
        "--port",
        "0",
        "--no-reload",
    )
    assert res.code == 3
    hook, kw = rec.calls[-1]
    assert (hook, _names(kw)) == ("sls_py_run", ["options", "project", "spec", "ui"])
    assert kw["options"] == RunOptions(
        host="127.0.0.1", port=0, reload=False, json_logs=False, clock=None, spec_key=(None, "fake")
    )


PLAN = Plan(
    [
        PlanStep("create", "function", "tiny-dev-hello", "new", {"memory_mb": 128}),
        PlanStep("delete", "bucket", "tiny-dev-old", "no longer in the app"),
    ]
)
PLAN_JSON = {
    "steps": [
        {
            "action": "create",
            "kind": "function",
            "name": "tiny-dev-hello",
            "reason": "new",
            "details": {"memory_mb": 128},
        },
        {
            "action": "delete",
            "kind": "bucket",
            "name": "tiny-dev-old",
            "reason": "no longer in the app",
            "details": {},
        },
    ]
}


@pytest.mark.hook("sls_py_plan")
def test_plan_is_printed_as_data(run_cli: CliRunner, project: Path) -> None:
    rec, plugins = _setup(sls_py_plan=PLAN)
    res = run_cli(plugins, "plan", "--project", str(project), "--provider", "fake", "--json")
    assert (res.code, json.loads(res.out)) == (0, PLAN_JSON)
    assert _names(rec.calls[-1][1]) == ["project", "spec", "ui"]
    empty = run_cli(
        _setup(sls_py_plan=Plan())[1], "plan", "--project", str(project), "--provider", "fake"
    )
    assert (empty.code, empty.out) == (0, "")
    assert "No changes" in empty.err


@pytest.mark.hook("sls_py_deploy")
def test_deploy_result_is_reported(run_cli: CliRunner, project: Path) -> None:
    result = DeployResult(
        applied=PLAN.steps, url="https://x.example", api_keys=["default"], outputs={"id": "a1"}
    )
    rec, plugins = _setup(sls_py_deploy=result)
    res = run_cli(plugins, "deploy", "--project", str(project), "--provider", "fake", "--json")
    assert res.code == 0, res.err
    assert json.loads(res.out) == {
        "applied": PLAN_JSON["steps"],
        "url": "https://x.example",
        "api_keys": ["default"],
        "outputs": {"id": "a1"},
    }
    assert (rec.calls[-1][0], _names(rec.calls[-1][1])) == (
        "sls_py_deploy",
        ["project", "spec", "ui"],
    )


@pytest.mark.hook("sls_py_remove")
def test_remove_reports_what_it_deleted(run_cli: CliRunner, project: Path) -> None:
    rec, plugins = _setup(sls_py_remove=PLAN)
    res = run_cli(
        plugins,
        "remove",
        "--project",
        str(project),
        "--provider",
        "fake",
        "--stage",
        "prod",
        "--json",
    )
    assert (res.code, json.loads(res.out)) == (0, PLAN_JSON)
    assert rec.calls[-1][1]["spec"].stage == "prod"


@pytest.mark.hook("sls_py_url")
def test_url_is_printed(run_cli: CliRunner, project: Path) -> None:
    rec, plugins = _setup(sls_py_url="http://127.0.0.1:4567")
    res = run_cli(plugins, "url", "--project", str(project), "--provider", "fake")
    assert (res.code, res.out) == (0, "http://127.0.0.1:4567\n")
    assert _names(rec.calls[-1][1]) == ["project", "spec"]


@pytest.mark.hook("sls_py_logs")
def test_logs_are_streamed(run_cli: CliRunner, project: Path) -> None:
    def logs(**kw: Any) -> Any:
        yield LogRecord(1_700_000_000.0, kw["function"], "first", "r1")
        yield LogRecord(1_700_000_001.0, kw["function"], "second", "r2")

    rec, plugins = _setup(sls_py_logs=logs)
    res = run_cli(
        plugins,
        "logs",
        "hello",
        "--since",
        "10m",
        "--project",
        str(project),
        "--provider",
        "fake",
        "--json",
    )
    assert res.code == 0, res.err
    assert [json.loads(line) for line in res.out.splitlines()] == [
        {"time": 1_700_000_000.0, "function": "hello", "message": "first", "request_id": "r1"},
        {"time": 1_700_000_001.0, "function": "hello", "message": "second", "request_id": "r2"},
    ]
    kw = rec.calls[-1][1]
    assert (kw["function"], kw["since_s"], kw["follow"]) == ("hello", 600.0, False)


@pytest.mark.hook("sls_py_api_keys")
def test_api_keys_are_listed(run_cli: CliRunner, project: Path) -> None:
    rec, plugins = _setup(sls_py_api_keys=[ApiKey("default", "k-123")])
    res = run_cli(plugins, "api-keys", "--project", str(project), "--provider", "fake", "--json")
    assert (res.code, json.loads(res.out)) == (0, [{"name": "default", "value": "k-123"}])
    assert _names(rec.calls[-1][1]) == ["project", "spec"]
    plain = run_cli(plugins, "api-keys", "--project", str(project), "--provider", "fake")
    assert plain.out == "default\tk-123\n"


@pytest.mark.hook("sls_py_trigger")
def test_trigger_requests_for_upload_schedule_and_queue(
    run_cli: CliRunner, project: Path, tmp_path: Path
) -> None:
    rec, plugins = _setup(sls_py_trigger=lambda **kw: {"fired": kw["request"].kind})
    photo = tmp_path / "cat.jpg"
    photo.write_bytes(b"\xff\xd8 cat")
    common = ("--project", str(project), "--provider", "fake", "--json")
    outs = [
        run_cli(plugins, "trigger", "upload", "inbox", str(photo), "--key", "in/cat.jpg", *common),
        run_cli(plugins, "trigger", "schedule", "nightly", *common),
        run_cli(plugins, "send", "jobs", "job-1", *common),
    ]
    assert [(r.code, json.loads(r.out)) for r in outs] == [
        (0, {"fired": "upload"}),
        (0, {"fired": "schedule"}),
        (0, {"fired": "queue"}),
    ]
    requests = [kw["request"] for hook, kw in rec.calls if hook == "sls_py_trigger"]
    assert requests == [
        TriggerRequest("upload", "inbox", key="in/cat.jpg", data=b"\xff\xd8 cat"),
        TriggerRequest("schedule", "nightly"),
        TriggerRequest("queue", "jobs", data=b"job-1"),
    ]
    unknown = run_cli(plugins, "send", "nojobs", "x", *common)
    assert unknown.code == 2 and "known queues: jobs" in unknown.err


@pytest.mark.hook("sls_py_add_commands")
def test_add_commands_adds_a_cli_command(run_cli: CliRunner) -> None:
    class Commands:
        @hookimpl
        def sls_py_add_commands(self, cli: Any) -> None:
            @cli.command("fake-greet")
            def greet(name: str) -> None:
                """Greet someone (added by a plugin)."""
                print(f"greetings, {name}")

    class Broken:
        @hookimpl
        def sls_py_add_commands(self, cli: Any) -> None:
            raise RuntimeError("plugin bug")

    res = run_cli(plugins_with(("cmds", Commands())), "fake-greet", "ada")
    assert (res.code, res.out) == (0, "greetings, ada\n")
    broken = run_cli(plugins_with(("broken", Broken())), "spec", "--schema")
    assert broken.code == 0 and json.loads(broken.out)["title"] == "Spec"
    assert "a plugin failed to add its commands: plugin bug" in broken.err
