"""The CLI, run as a user runs it: a subprocess."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from tests.conftest import run_cli

SPELL = '{"magic-word": "clonezero-token", "spell": "adder", "x": 29, "y": 13}'


def test_invoke_work_magic_prints_the_result_from_a_separate_process(work_magic: Path) -> None:
    done = run_cli("invoke", "work-magic", SPELL, "--provider", "local", "--project", str(work_magic))
    assert (done.returncode, done.stdout, done.stderr) == (0, '{"result": 42}\n', "")


def test_invoke_reads_the_payload_from_a_file(work_magic: Path, tmp_path: Path) -> None:
    payload = tmp_path / "spell.json"
    payload.write_text('{"magic-word": "clonezero-token", "spell": "divider", "x": 84, "y": 2}')
    done = run_cli("invoke", "work-magic", "--file", str(payload), "--json", "--project", str(work_magic))
    assert done.returncode == 0, done.stderr
    out = json.loads(done.stdout)
    assert (out["result"], out["error"], out["function"]) == ({"result": 42}, None, "work-magic")


def test_function_error_prints_type_and_message_and_exits_1(work_magic: Path) -> None:
    bad = '{"magic-word": "clonezero-token", "spell": "divider", "x": 1, "y": 0}'
    done = run_cli("invoke", "work-magic", bad, "--project", str(work_magic))
    assert (done.returncode, done.stdout) == (1, "")
    assert done.stderr == "work-magic failed: HttpError (status 400): Cannot divide by zero\n"


def test_validation_error_lists_the_fields(work_magic: Path) -> None:
    done = run_cli("invoke", "work-magic", '{"spell": "adder", "x": 1}', "--project", str(work_magic))
    assert done.returncode == 1
    assert done.stderr.splitlines() == [
        "work-magic failed: InvalidInput (status 400): Invalid request body",
        "  magic-word: Field required",
        "  y: Field required",
    ]


def test_unknown_function_lists_the_known_ones(work_magic: Path) -> None:
    done = run_cli("invoke", "work-magci", "{}", "--project", str(work_magic))
    assert done.returncode == 2
    assert done.stderr.splitlines() == [
        "error: app 'clonezero' has no function 'work-magci'",
        "hint: known functions: work-magic, catalog-upload, nightly-report, spell-counts, count-chunk",
    ]


def test_bad_json_payload_is_one_clear_line(work_magic: Path) -> None:
    done = run_cli("invoke", "work-magic", "{magic}", "--project", str(work_magic))
    assert done.returncode == 2
    assert done.stderr.splitlines()[0].startswith("error: the payload argument is not valid JSON")
    assert "Traceback" not in done.stderr


def test_timeout_kills_the_function(tmp_path: Path) -> None:
    root = tmp_path / "slow"
    (root / "slowapp").mkdir(parents=True)
    (root / "pyproject.toml").write_text('[tool.sls-py]\napp = "slowapp:app"\n')
    (root / "slowapp" / "__init__.py").write_text(
        "import time\nfrom sls_py import App\napp = App('slow')\n"
        "@app.function(timeout_s=0.5)\ndef nap(p):\n    time.sleep(30)\n"
    )
    done = run_cli("invoke", "nap", "--project", str(root), env={"SLS_PY_STARTUP_GRACE_S": "1"})
    assert done.returncode == 1
    assert (
        done.stderr
        == "nap failed: TimeoutError (status 504): function 'nap' timed out after 0.5 s and was stopped\n"
    )


def test_not_a_project(tmp_path: Path) -> None:
    done = run_cli("spec", "--project", str(tmp_path))
    assert done.returncode == 2
    assert done.stderr.splitlines()[0] == f"error: no pyproject.toml in {tmp_path.resolve()}"


def test_spec_prints_functions_resources_and_gateway(work_magic: Path) -> None:
    done = run_cli("spec", "--project", str(work_magic))
    assert done.returncode == 0, done.stderr
    spec = json.loads(done.stdout)
    assert [
        (f["name"], [t["kind"] for t in f["triggers"]], f["invokes"]) for f in spec["functions"]
    ] == [
        ("work-magic", ["http"], []),
        ("catalog-upload", ["upload"], []),
        ("nightly-report", ["schedule"], ["count-chunk"]),
        ("spell-counts", ["http"], []),
        ("count-chunk", [], []),
    ]
    assert (
        [b["name"] for b in spec["buckets"]],
        [t["name"] for t in spec["tables"]],
        spec["caches"],
        spec["databases"],
    ) == (
        ["uploads", "reports"],
        ["sls-py-fanout"],
        [{"name": "spells", "qualified_name": "clonezero-dev-spells"}],
        [{"name": "catalog", "qualified_name": "clonezero-dev-catalog", "migrations": "migrations"}],
    )
    assert spec["gateway"]["api_keys"] == ["default"]


def test_spec_schema_validates_the_spec(work_magic: Path) -> None:
    import jsonschema  # installed with moto

    schema = json.loads(run_cli("spec", "--schema").stdout)
    spec = json.loads(run_cli("spec", "--project", str(work_magic), "--stage", "prod").stdout)
    jsonschema.validate(spec, schema)


def test_providers_lists_local_and_aws_as_json() -> None:
    done = run_cli("providers", "--json", env={"SLS_PY_DISABLE_PLUGINS": ""})
    assert done.returncode == 0, done.stderr
    names = {p["name"]: p for p in json.loads(done.stdout)["providers"]}
    assert {"local", "aws"} <= set(names)
    assert "invoke" in names["local"]["commands"]


def test_help_does_not_import_boto3() -> None:
    code = (
        "import sys\nfrom sls_py.cli import main\nmain(['--help'])\n"
        "print(sorted(m for m in ('boto3', 'botocore', 'httpx', 'uvicorn') if m in sys.modules))"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert "invoke" in done.stdout and done.stdout.strip().endswith("[]")


def test_runtime_imports_none_of_the_tooling() -> None:
    code = (
        "import sys\nimport sls_py, sls_py.runtime\n"
        "print(sorted(m for m in ('pydantic', 'pluggy', 'typer', 'rich', 'boto3', 'httpx', 'click') "
        "if m in sys.modules))"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert (done.returncode, done.stdout.strip()) == (0, "[]")


def test_new_project_runs_and_passes_its_own_tests(tmp_path: Path) -> None:
    done = run_cli("new", "my-app", "--dir", str(tmp_path / "my-app"))
    assert done.returncode == 0, done.stderr
    project = tmp_path / "my-app"
    invoked = run_cli("invoke", "hello", '{"name": "you"}', "--project", str(project))
    assert (invoked.returncode, invoked.stdout) == (0, '{"message": "Hello, you!"}\n')
    assert json.loads(run_cli("spec", "--project", str(project)).stdout)["app"] == "my-app"
    tests = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-p", "no:xdist"],
        cwd=project,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert tests.returncode == 0, tests.stdout + tests.stderr
    from sls_py.testing.local_server import local_run_available

    # the end-to-end test needs `sls-py run --provider local`; it says so when it is skipped
    expected = "5 passed" if local_run_available() is None else "4 passed, 1 skipped"
    assert expected in tests.stdout, tests.stdout


def test_new_refuses_to_overwrite(tmp_path: Path) -> None:
    (tmp_path / "taken").mkdir()
    (tmp_path / "taken" / "file").write_text("mine")
    done = run_cli("new", "taken", "--dir", str(tmp_path / "taken"))
    assert done.returncode == 2
    assert (tmp_path / "taken" / "file").read_text() == "mine"
    assert done.stderr.startswith(f"error: {tmp_path / 'taken'} already exists and is not empty")


def test_usage_errors_are_one_message_not_a_traceback(work_magic: Path) -> None:
    done = run_cli("invoke", "work-magic", "--projcet", str(work_magic))
    assert done.returncode == 2
    assert "No such option: --projcet" in done.stderr
    assert "Traceback" not in done.stderr
    missing = run_cli("invoke")
    assert missing.returncode == 2
    assert missing.stderr.splitlines()[0] == "Usage: sls-py invoke [OPTIONS] {function} [payload]"
    assert "Missing argument 'function'" in missing.stderr
    assert "Traceback" not in missing.stderr
