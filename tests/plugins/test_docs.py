"""docs/providers.md stays true: every hook is documented with its exact
signature, every hook has a test of its own, the capability table matches the
code, and the complete example provider in the doc really works.
"""

from __future__ import annotations

import ast
import inspect
import json
import re
import textwrap
import tomllib
from pathlib import Path

import pytest
from sls_py import cli as cli_module
from sls_py import hookspecs
from sls_py import session as session_module
from sls_py.spec import CAPABILITIES

ROOT = Path(__file__).resolve().parents[2]
DOC = ROOT / "docs" / "providers.md"
TESTS = ROOT / "tests"


def hook_specs() -> dict[str, inspect.Signature]:
    """Every hook declared in sls_py/hookspecs.py, with its signature."""
    return {
        name: inspect.signature(func)
        for name, func in vars(hookspecs).items()
        if callable(func) and getattr(func, f"{hookspecs.PROJECT_NAME}_spec", None) is not None
    }


def doc_sections() -> dict[str, str]:
    """``### sls_py_*`` sections of the hook reference, by hook name."""
    text = DOC.read_text(encoding="utf-8")
    reference = text.split("## Hook reference", 1)[1].split("\n## ", 1)[0]
    parts = re.split(r"^### (\S+)\s*$", reference, flags=re.M)
    return {parts[i]: parts[i + 1] for i in range(1, len(parts), 2)}


def python_blocks(section: str) -> list[str]:
    return re.findall(r"```python\n(.*?)```", section, flags=re.S)


def doc_function(block: str, name: str) -> ast.FunctionDef:
    for node in ast.walk(ast.parse(textwrap.dedent(block))):
        if isinstance(node, ast.FunctionDef) and node.name == name:
            return node
    raise AssertionError(f"no `def {name}(...)` in block:\n{block}")


def test_every_hook_is_documented_and_nothing_else() -> None:
    assert sorted(doc_sections()) == sorted(hook_specs())


@pytest.mark.parametrize("hook", sorted(hook_specs()))
def test_documented_signature_matches_the_spec(hook: str) -> None:
    section = doc_sections()[hook]
    blocks = python_blocks(section)
    assert blocks, f"{hook}: no signature block"
    documented = doc_function(blocks[0], hook)
    spec = hook_specs()[hook]
    doc_params = [
        (a.arg, ast.unparse(a.annotation) if a.annotation else None) for a in documented.args.args
    ]
    spec_params = [(p.name, str(p.annotation)) for p in spec.parameters.values()]
    assert doc_params == spec_params, (
        f"{hook}: docs/providers.md and hookspecs.py disagree on the arguments"
    )
    assert documented.returns is not None and ast.unparse(documented.returns) == str(
        spec.return_annotation
    )


@pytest.mark.parametrize("hook", sorted(hook_specs()))
def test_documented_firstresult_matches_the_spec(hook: str) -> None:
    opts = getattr(getattr(hookspecs, hook), f"{hookspecs.PROJECT_NAME}_spec")
    match = re.search(r"^- firstresult: (yes|no)$", doc_sections()[hook], flags=re.M)
    assert match, f"{hook}: the doc does not say whether it is firstresult"
    assert (match.group(1) == "yes") == bool(opts["firstresult"])


@pytest.mark.parametrize("hook", sorted(hook_specs()))
def test_each_hook_has_a_valid_example(hook: str) -> None:
    """The example implements the hook with a subset of its arguments (hooks only grow)."""
    examples = [b for b in python_blocks(doc_sections()[hook])[1:] if "@hookimpl" in b]
    assert examples, f"{hook}: no example implementation"
    impl = doc_function(examples[0], hook)
    allowed = list(hook_specs()[hook].parameters)
    used = [a.arg for a in impl.args.args]
    assert set(used) <= set(allowed), f"{hook}: example takes {used}, the spec has {allowed}"


def test_capability_table_matches_the_code() -> None:
    text = DOC.read_text(encoding="utf-8")
    table = dict(
        re.findall(
            r"^\| `([a-z_.]+)` \| ([^|]+?) \|$",
            text.split("## Capabilities", 1)[1].split("\n## ", 1)[0],
            flags=re.M,
        )
    )
    assert table == CAPABILITIES


# --- every contract row has a conformance check ----------------------------------


def contract_doc_rows() -> list[str]:
    """The ids of the rows of the contract tables (first column, in backquotes)."""
    text = DOC.read_text(encoding="utf-8")
    section = text.split("## The contract", 1)[1].split("\n## ", 1)[0]
    return re.findall(r"^\| `([a-z]+\.[a-z-]+)` \|", section, flags=re.M)


def test_every_contract_row_has_a_conformance_check() -> None:
    """Each row id of docs/providers.md's contract is named by a conformance test
    (``@contract("row.id")``), and each id a test names is documented, once."""
    from sls_py.testing.conformance import ProviderConformance
    from sls_py.testing.conformance.contracts import contract_rows

    documented = contract_doc_rows()
    assert len(documented) >= 25, documented
    repeated = sorted({row for row in documented if documented.count(row) > 1})
    assert not repeated, f"contract rows documented twice: {repeated}"
    checked = contract_rows(ProviderConformance)
    missing = sorted(set(documented) - set(checked))
    assert not missing, f"contract rows without a conformance check: {missing}"
    unknown = sorted(set(checked) - set(documented))
    assert not unknown, f"conformance checks name rows docs/providers.md lacks: {unknown}"
    for row, tests in checked.items():
        for name in tests:
            source = inspect.getsource(getattr(ProviderConformance, name))
            assert name.startswith("test_") and "assert" in source, f"{name} ({row}) is not a test"


def test_a_contract_row_without_a_check_is_caught() -> None:
    """The check itself: a class whose tests name fewer rows misses the others."""
    from sls_py.testing.conformance.contracts import contract, contract_rows

    class Partial:
        @contract("http.no-route", "http.crash")
        def test_one(self) -> None:
            raise AssertionError

        def test_unmarked(self) -> None:
            raise AssertionError

    assert contract_rows(Partial) == {"http.no-route": ["test_one"], "http.crash": ["test_one"]}
    assert set(contract_doc_rows()) - set(contract_rows(Partial))


# --- every hook has a test of its own ---------------------------------------------


def _hook_marks(path: Path) -> list[tuple[str, str, bool]]:
    """``(hook, test name, has an assert)`` for each ``@pytest.mark.hook(...)`` test in ``path``."""
    found = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if not isinstance(node, ast.FunctionDef):
            continue
        for deco in node.decorator_list:
            if (
                isinstance(deco, ast.Call)
                and ast.unparse(deco.func) == "pytest.mark.hook"
                and deco.args
                and isinstance(deco.args[0], ast.Constant)
            ):
                asserts = any(isinstance(n, ast.Assert) for n in ast.walk(node))
                found.append((str(deco.args[0].value), node.name, asserts))
    return found


def test_every_hook_has_a_test_of_its_own() -> None:
    marks = [m for path in sorted(TESTS.rglob("test_*.py")) for m in _hook_marks(path)]
    tested = {hook for hook, _, _ in marks}
    missing = sorted(set(hook_specs()) - tested)
    assert not missing, f"hooks without a test marked @pytest.mark.hook(NAME): {missing}"
    unknown = sorted(tested - set(hook_specs()))
    assert not unknown, f"tests marked for hooks that do not exist: {unknown}"
    for hook, test, has_assert in marks:
        assert test.startswith("test_") and has_assert, f"{test} (for {hook}) is not a real test"


def test_a_new_hook_without_a_test_is_caught(tmp_path: Path) -> None:
    """The registry check itself: a marked test is found, an unmarked one is not."""
    sample = tmp_path / "test_sample.py"
    sample.write_text(
        "import pytest\n\n@pytest.mark.hook('sls_py_new')\ndef test_new():\n    assert 1\n\n"
        "def test_other():\n    assert 1\n"
    )
    assert _hook_marks(sample) == [("sls_py_new", "test_new", True)]


# --- the complete example runs ------------------------------------------------------


def example_files() -> dict[str, str]:
    text = (
        DOC.read_text(encoding="utf-8")
        .split("## A complete minimal provider", 1)[1]
        .split("\n## ", 1)[0]
    )
    blocks = re.findall(r"```(?:python|toml)\n# file: (\S+)\n(.*?)```", text, flags=re.S)
    return dict(blocks)


@pytest.fixture
def folder_provider(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The doc's example provider, 'installed' from the doc's own files and entry point."""
    files = example_files()
    assert sorted(files) == ["pyproject.toml", "sls_py_folder/__init__.py"]
    site = tmp_path / "site"
    for rel, content in files.items():
        target = site / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(content, encoding="utf-8")
    meta = tomllib.loads(files["pyproject.toml"])
    info = site / "sls_py_folder-0.1.0.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(
        f"Metadata-Version: 2.1\nName: {meta['project']['name']}\nVersion: 0.1.0\n"
    )
    eps = meta["project"]["entry-points"]["sls_py"]
    (info / "entry_points.txt").write_text(
        "[sls_py]\n" + "".join(f"{k} = {v}\n" for k, v in eps.items())
    )
    monkeypatch.syspath_prepend(str(site))
    monkeypatch.delenv("SLS_PY_DISABLE_PLUGINS", raising=False)
    monkeypatch.setattr(cli_module, "_state", {})
    monkeypatch.setattr(session_module, "_state", {})  # the installed plugins, loaded afresh
    return site


def test_complete_example_provider_works(
    folder_provider: Path, project: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    def sls(*argv: str) -> tuple[int, str, str]:
        code = cli_module.main([*argv, "--project", str(project), "--provider", "folder"])
        out, err = capsys.readouterr()
        return code, out, err

    (project / "tinyapp.py").write_text(
        "from sls_py import App\n\napp = App('simple')\n\n"
        "@app.function(name='hello')\ndef hello(payload: dict, ctx) -> dict:\n"
        "    import os\n    return {'hello': payload['name'], 'greeting': os.environ['GREETING']}\n"
    )
    assert cli_module.main(["providers", "--json"]) == 0
    listing = json.loads(capsys.readouterr().out)
    folder = next(p for p in listing["providers"] if p["name"] == "folder")
    assert folder["commands"] == ["invoke", "plan", "deploy", "remove"]
    code, _, err = sls("invoke", "hello", '{"name": "you"}')
    assert code == 2 and "function 'hello' is not deployed" in err
    code, out, _ = sls("plan", "--json")
    assert (code, json.loads(out)) == (
        0,
        {
            "steps": [
                {
                    "action": "create",
                    "kind": "function",
                    "name": "hello",
                    "reason": "new",
                    "details": {},
                }
            ]
        },
    )
    assert sls("deploy")[0] == 0
    assert json.loads(sls("plan", "--json")[1]) == {"steps": []}
    assert sls("invoke", "hello", '{"name": "you"}')[:2] == (
        0,
        '{"hello": "you", "greeting": "hi"}\n',
    )
    code, _, err = sls("url")
    assert code == 2 and "provider 'folder' does not implement `url`" in err
    code, out, _ = sls("remove", "--json")
    assert json.loads(out)["steps"] == [
        {"action": "delete", "kind": "function", "name": "hello", "reason": "", "details": {}}
    ]
