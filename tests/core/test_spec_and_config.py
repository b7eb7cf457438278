"""The spec built from an app and its configuration, and configuration errors."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest
from sls_py.config import load_project, resolve_environment
from sls_py.errors import ConfigError, SpecError
from sls_py.spec import CorsSpec, FunctionSpec, HttpTriggerSpec, Spec, spec_schema


def write_project(root: Path, config: str, app: str) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    (root / "pyproject.toml").write_text(textwrap.dedent(config))
    pkg = root / "tinyapp"
    pkg.mkdir(exist_ok=True)
    (pkg / "__init__.py").write_text("")
    (pkg / "app.py").write_text(textwrap.dedent(app))
    return root


BASE_CONFIG = """
    [project]
    name = "tiny"
    [tool.sls-py]
    app = "tinyapp.app:app"
"""

BASE_APP = """
    from sls_py import App, http, schedule, upload, queue
    app = App("tiny", api_keys=["default"])
    photos = app.bucket("photos")
    jobs = app.queue("jobs", max_receives=5)
    app.table("kv", key="pk", sort_key="sk")

    @app.function(triggers=[http("GET", "/items/{id}", api_key=True, cors=True)], concurrency=2)
    def get_item(payload: dict, ctx):
        return payload

    @app.function(name="thumb", triggers=[upload("photos", prefix="in/", suffix=".jpg")])
    def thumb(event, ctx):
        return None

    @app.function(triggers=[schedule("rate(1 hour)"), queue(jobs, batch_size=5)])
    def worker(event, ctx):
        return None
"""


def test_example_app_spec_has_all_five_functions(work_magic: Path) -> None:
    spec = load_project(work_magic).spec()
    assert [f.name for f in spec.functions] == [
        "work-magic",
        "catalog-upload",
        "nightly-report",
        "spell-counts",
        "count-chunk",
    ]
    assert [(f.name, f.invokes) for f in spec.functions if f.invokes] == [
        ("nightly-report", ["count-chunk"])
    ]
    assert spec.function("work-magic") == FunctionSpec(
        name="work-magic",
        handler="work_magic.app:work_magic",
        style="payload",
        memory_mb=128,
        timeout_s=10,
        environment={},
        triggers=[HttpTriggerSpec(method="POST", path="/work-magic", api_key=True, cors=CorsSpec())],
        description="Cast ``spell`` on x and y, if the magic word is right.",
    )
    assert [t.kind for f in spec.functions for t in f.triggers] == ["http", "upload", "schedule", "http"]
    assert [b.qualified_name for b in spec.buckets] == ["clonezero-dev-uploads", "clonezero-dev-reports"]
    assert [t.qualified_name for t in spec.tables] == ["clonezero-dev-sls-py-fanout"]
    assert [(d.name, d.qualified_name, d.migrations) for d in spec.databases] == [
        ("catalog", "clonezero-dev-catalog", "migrations")
    ]
    assert spec.gateway.api_keys == ["default"]


def test_stage_overrides_apply_and_never_collide(work_magic: Path) -> None:
    project = load_project(work_magic)
    prod = project.spec("prod")
    assert prod.stage == "prod"
    assert {f.memory_mb for f in prod.functions} == {256}
    assert prod.gateway.api_keys == ["partner", "mobile"]
    assert prod.gateway.cors.origins == ["https://clonezero.example"]
    assert prod.gateway.usage is not None and prod.gateway.usage.quota == 100000
    # the magic word is config: a default for dev only, none for prod (set it with the CLI)
    assert [(c.name, c.keys, c.defaults) for c in prod.configs] == [("settings", ["magic-word"], {})]
    assert project.spec("dev").configs[0].defaults == {"magic-word": "clonezero-token"}
    dev_names = {b.qualified_name for b in project.spec("dev").buckets}
    assert dev_names.isdisjoint({b.qualified_name for b in prod.buckets})


def test_function_level_override_beats_stage_level(tmp_path: Path) -> None:
    config = (
        BASE_CONFIG
        + """
    [tool.sls-py.stages.prod]
    timeout_s = 20
    environment = { A = "stage" }
    [tool.sls-py.stages.prod.functions.worker]
    timeout_s = 30
    environment = { A = "function" }
    """
    )
    spec = load_project(write_project(tmp_path / "p", config, BASE_APP)).spec("prod")
    assert [(f.name, f.timeout_s, f.environment) for f in spec.functions] == [
        ("get-item", 20, {"A": "stage"}),
        ("thumb", 20, {"A": "stage"}),
        ("worker", 30, {"A": "function"}),
    ]


def test_spec_round_trips_as_json_and_schema_is_published(tmp_path: Path) -> None:
    spec = load_project(write_project(tmp_path / "p", BASE_CONFIG, BASE_APP)).spec()
    assert Spec.model_validate_json(spec.model_dump_json()) == spec
    schema = spec_schema()
    assert schema["title"] == "Spec" and "functions" in schema["properties"]


def test_records_compare_hash_and_show_as_frozen_dataclasses(work_magic: Path) -> None:
    """The records' repr, == and hash (written once for all of them) behave as the
    ones dataclasses generates: field by field, same class only, a repr that reads
    back, and hashable only when every compared field is."""
    import dataclasses

    import sls_py.spec as records

    spec = load_project(work_magic).spec()
    again = Spec.from_data(spec.to_data())
    assert again == spec and again is not spec
    assert (again != spec) is False  # __ne__ follows __eq__
    fn = spec.functions[0]
    changed = dataclasses.replace(spec, functions=[dataclasses.replace(fn, timeout_s=fn.timeout_s + 1)])
    assert changed != spec  # a field two levels down
    assert eval(repr(spec), vars(records)) == spec  # every record's repr reads back
    trigger = HttpTriggerSpec(method="GET", path="/x", cors=CorsSpec(origins=["https://a.example"]))
    assert repr(trigger).startswith("HttpTriggerSpec(kind='http', method='GET', path='/x', ")
    assert trigger != HttpTriggerSpec(method="GET", path="/y")
    assert trigger.__eq__(CorsSpec()) is NotImplemented and trigger != "trigger"
    with pytest.raises(TypeError, match="unhashable"):
        hash(trigger)  # its CorsSpec holds lists, as a generated hash would refuse
    plain = HttpTriggerSpec(method="GET", path="/x")
    assert hash(plain) == hash(HttpTriggerSpec(method="GET", path="/x"))
    assert {plain, HttpTriggerSpec(method="GET", path="/x")} == {plain}
    with pytest.raises(dataclasses.FrozenInstanceError):
        plain.path = "/z"  # type: ignore[misc]


def test_required_capabilities(tmp_path: Path) -> None:
    spec = load_project(write_project(tmp_path / "p", BASE_CONFIG, BASE_APP)).spec()
    assert set(spec.required_capabilities()) == {
        "function.timeout",
        "function.memory",
        "function.concurrency",
        "trigger.http",
        "http.api_key",
        "http.cors",
        "trigger.upload",
        "trigger.schedule",
        "trigger.queue",
        "resource.bucket",
        "resource.queue",
        "resource.table",
    }


@pytest.mark.parametrize(
    ("config", "says"),
    [
        ("[tool.sls-py]\napp = 3\n", "[tool.sls-py] app: Input should be a valid string"),
        ('[tool.sls-py]\napp = "tinyapp.app:app"\nmemroy = 1\n', "[tool.sls-py] memroy: Extra inputs"),
        (
            '[tool.sls-py]\napp = "tinyapp.app:app"\n[tool.sls-py.stages.prod]\nmemory_mb = "lots"\n',
            "[tool.sls-py.stages.prod] memory_mb: Input should be a valid integer",
        ),
        ('[tool.sls-py]\napp = "tinyapp.app:app"\nstage = "Prod!"\n', "stage name 'Prod!' is not valid"),
        ("[tool.sls-py\n", "not valid TOML"),
        ("[project]\nname = 'x'\n", "no [tool.sls-py] table"),
    ],
)
def test_config_errors_name_file_key_and_problem(tmp_path: Path, config: str, says: str) -> None:
    root = write_project(tmp_path / "p", config, BASE_APP)
    with pytest.raises(ConfigError) as err:
        load_project(root).spec()
    assert says in err.value.message
    assert str(root / "pyproject.toml") in err.value.message


def test_missing_pyproject_has_a_hint(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as err:
        load_project(tmp_path)
    assert err.value.message == f"no pyproject.toml in {tmp_path.resolve()}"
    assert err.value.hint is not None and "sls-py new" in err.value.hint


def test_unknown_function_in_stage_override(tmp_path: Path) -> None:
    config = BASE_CONFIG + "\n[tool.sls-py.stages.dev.functions.nope]\nmemory_mb = 256\n"
    with pytest.raises(ConfigError) as err:
        load_project(write_project(tmp_path / "p", config, BASE_APP)).spec()
    assert "unknown function(s) nope" in err.value.message
    assert err.value.hint == "known functions: get-item, thumb, worker"


@pytest.mark.parametrize(
    ("app", "says"),
    [
        ("def broken(:\n", "SyntaxError"),
        ("import not_a_module_anywhere\n", "ModuleNotFoundError: No module named 'not_a_module_anywhere'"),
        ("raise RuntimeError('bad setup')\n", "RuntimeError: bad setup"),
        ("app = 42\n", "is a int, not an sls_py.App"),
        ("x = 1\n", "has no attribute 'app'"),
    ],
)
def test_app_import_errors_are_reported_briefly(tmp_path: Path, app: str, says: str) -> None:
    with pytest.raises(ConfigError) as err:
        load_project(write_project(tmp_path / "p", BASE_CONFIG, app)).spec()
    assert says in err.value.message


@pytest.mark.parametrize(
    ("body", "says"),
    [
        ('@app.function(triggers=[http("GET", "items")])\ndef f(p): pass\n', "must start with '/'"),
        (
            '@app.function(triggers=[http("GET", "/{proxy+}/x")])\ndef f(p): pass\n',
            "greedy '{proxy+}' must be the last segment",
        ),
        ('@app.function(triggers=[http("GET", "/a{b}")])\ndef f(p): pass\n', "must be a whole {name}"),
        (
            '@app.function(triggers=[upload("nope")])\ndef f(p): pass\n',
            "bucket 'nope', which the app does not",
        ),
        ('@app.function(triggers=[queue("nope")])\ndef f(p): pass\n', "queue 'nope', which the app does not"),
        (
            '@app.function(triggers=[schedule("rate(5 weeks)")])\ndef f(p): pass\n',
            "rate(N minutes|hours|days)",
        ),
        (
            "@app.function(memory_mb=1)\ndef f(p): pass\n",
            "memory_mb: Input should be greater than or equal to 64",
        ),
        (
            '@app.function(triggers=[http("GET", "/a/{x}")])\ndef f(p): pass\n'
            '@app.function(triggers=[http("GET", "/a/{y}")])\ndef g(p): pass\n',
            "route GET /a/{y} of function 'g' is already taken by function 'f'",
        ),
        ('@app.function(name="Bad_Name")\ndef f(p): pass\n', "function name 'Bad_Name' is not valid"),
    ],
)
def test_spec_errors_name_the_function_and_problem(tmp_path: Path, body: str, says: str) -> None:
    app = "from sls_py import App, http, schedule, upload, queue\napp = App('tiny')\n" + body
    with pytest.raises(SpecError) as err:
        load_project(write_project(tmp_path / "p", BASE_CONFIG, app)).spec()
    assert says in err.value.message


def test_environment_references_resolve_late() -> None:
    env = {"A": "${env:SECRET}", "B": "plain", "C": "x-${env:SECRET}-y"}
    assert resolve_environment(env, {"SECRET": "s3"}) == {"A": "s3", "B": "plain", "C": "x-s3-y"}
    with pytest.raises(ConfigError) as err:
        resolve_environment(env, {})
    assert err.value.message == "environment variable A refers to ${env:SECRET}, which is not set"


def test_table_key_types_reach_the_spec(tmp_path: Path) -> None:
    app = BASE_APP.replace(
        'app.table("kv", key="pk", sort_key="sk")',
        'app.table("kv", key="pk", sort_key="sk", sort_key_type="number")',
    )
    spec = load_project(write_project(tmp_path / "p", BASE_CONFIG, app)).spec()
    assert [(t.key, t.key_type, t.sort_key, t.sort_key_type) for t in spec.tables] == [
        ("pk", "string", "sk", "number")
    ]
    bad = BASE_APP.replace(
        'app.table("kv", key="pk", sort_key="sk")', 'app.table("kv", key="pk", key_type="int")'
    )
    with pytest.raises(SpecError) as err:
        load_project(write_project(tmp_path / "q", BASE_CONFIG, bad)).spec()
    assert err.value.message == "table 'kv': key_type 'int' is not a key type"
