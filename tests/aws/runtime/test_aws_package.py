"""The Lambda zip: contents, exclusions, determinism, dependencies for
Lambda's platform from a local wheel folder (never the network), limits."""

from __future__ import annotations

import base64
import hashlib
import os
import re
import shutil
import zipfile
from pathlib import Path

import pytest
from aws_runtime_support import (
    WORK_MAGIC,
    WORK_MAGIC_APP_FILES,
    WORK_MAGIC_RUNTIME_FILES,
    mini_project,
    write_wheel,
)
from sls_py.config import load_project
from sls_py_aws.package import (
    HANDLER,
    MAX_UNZIPPED_BYTES,
    BuiltPackage,
    PackageError,
    build_package,
)


def _build(root: Path, *, bytecode: bool = False, **kw: object) -> BuiltPackage:
    """Build ``root``'s zip; without bytecode unless asked, so the expected file
    lists hold whichever Python runs the tests (bytecode needs it to match the runtime)."""
    project = load_project(root)
    spec = project.spec()
    aws = {**spec.provider_settings("aws"), "bytecode": bytecode}
    spec = spec.model_copy(update={"providers": {**spec.providers, "aws": aws}})
    return build_package(spec, project, **kw)  # type: ignore[arg-type]


def _copy_work_magic(tmp_path: Path) -> Path:
    dest = tmp_path / "work_magic"
    shutil.copytree(WORK_MAGIC, dest, ignore=shutil.ignore_patterns("__pycache__", ".sls-py"))
    return dest


def test_example_app_zip_is_small_and_holds_code_and_runtime_only() -> None:
    built = _build(WORK_MAGIC, include_dependencies=False)
    assert built.files == sorted(
[*WORK_MAGIC_APP_FILES, *WORK_MAGIC_RUNTIME_FILES])
    assert built.handler == HANDLER == "sls_py_aws.handler.handle"
    assert built.size == len(built.data) < 100 * 1024
    with zipfile.ZipFile(_bytes_file(built.data)) as zf:
        assert built.unzipped_size == sum(i.file_size for i in zf.infolist())


def _bytes_file(data: bytes) -> object:
    import io

    return io.BytesIO(data)


def test_same_inputs_give_the_same_bytes(tmp_path: Path) -> None:
    first = _build(WORK_MAGIC, include_dependencies=False)
    copy = _copy_work_magic(tmp_path)
    for path in copy.rglob("*"):  # other times and modes, another folder: same zip
        os.utime(path, (1_000_000_000, 1_000_000_000))
        if path.is_file():
            path.chmod(0o600)
    second = _build(copy, include_dependencies=False)
    third = _build(copy, include_dependencies=False)
    assert first.data == second.data == third.data
    expected = base64.b64encode(hashlib.sha256(first.data).digest()).decode()
    assert first.code_sha256 == second.code_sha256 == expected
    with zipfile.ZipFile(_bytes_file(first.data)) as zf:
        infos = zf.infolist()
    assert [i.filename for i in infos] == first.files
    assert {(i.date_time, i.external_attr >> 16, i.create_system) for i in infos} == {
        ((1980, 1, 1, 0, 0, 0), 0o100644, 3)
    }


def test_changed_code_changes_the_hash(tmp_path: Path) -> None:
    copy = _copy_work_magic(tmp_path)
    before = _build(copy, include_dependencies=False)
    app_py = copy / "work_magic" / "app.py"
    app_py.write_text(app_py.read_text() + "\n# changed\n")
    assert _build(copy, include_dependencies=False).code_sha256 != before.code_sha256


def test_secrets_tests_and_caches_are_never_packed(tmp_path: Path) -> None:
    copy = _copy_work_magic(tmp_path)
    planted = [
        ".env",
        ".env.production",
        "work_magic/.env",
        "tests/test_spells.py",
        "work_magic/tests/test_inner.py",
        "work_magic/test_spells.py",
        "work_magic/conftest.py",
        "work_magic/__pycache__/app.cpython-311.pyc",
        ".sls-py/state/dev.json",
        ".venv/lib/python3.11/site-packages/evil.py",
        "myenv/pyvenv.cfg",
        "myenv/lib/python3.11/site-packages/evil.py",
        ".git/config",
        ".pytest_cache/v/cache/lastfailed",
        "credentials",
        ".aws/credentials",
        ".aws/config",
        ".ssh/id_rsa",
        "id_rsa",
        "id_ed25519.pub",
        "certs/server.pem",
        "certs/private.key",
        "work_magic/service-account-prod.json",
        "dist/clonezero-0.1.0.tar.gz",
        "clonezero.egg-info/PKG-INFO",
    ]
    for rel in planted:
        path = copy / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text("AWS_SECRET_ACCESS_KEY=not-for-lambda\n")
    kept = copy / "work_magic" / "data" / "spells.json"
    kept.parent.mkdir()
    kept.write_text('{"adder": "+"}')

    built = _build(copy, include_dependencies=False)
    assert built.files == sorted(
[*WORK_MAGIC_APP_FILES, "work_magic/data/spells.json", *WORK_MAGIC_RUNTIME_FILES]
    )
    assert b"not-for-lambda" not in built.data


def test_local_wheel_dependency_is_installed_and_cached(tmp_path: Path) -> None:
    wheels = tmp_path / "wheels"
    write_wheel(wheels, "tinydep")
    root = mini_project(tmp_path, ["tinydep==1.0", "sls-py>=0.1"])

    built = _build(root, wheel_dir=wheels)
    assert [f for f in built.files if not f.startswith(("sls_py", "mini_app"))] == [
        "pyproject.toml",
        "tinydep-1.0.dist-info/INSTALLER",
        "tinydep-1.0.dist-info/METADATA",
        "tinydep-1.0.dist-info/RECORD",
        "tinydep-1.0.dist-info/REQUESTED",
        "tinydep-1.0.dist-info/WHEEL",
        "tinydep/__init__.py",
    ]
    with zipfile.ZipFile(_bytes_file(built.data)) as zf:
        assert zf.read("tinydep/__init__.py") == b"VALUE = 42\n"

    # The second build reuses the installed copy under .sls-py/aws/deps/<hash>/.
    [cached] = [p for p in (root / ".sls-py" / "aws" / "deps").iterdir() if p.is_dir()]
    assert (cached / ".complete").is_file()
    (cached / "tinydep" / "marker.txt").write_text("from the cache")
    again = _build(root, wheel_dir=wheels)
    assert "tinydep/marker.txt" in again.files
    assert ".complete" not in again.files


def test_platform_wheel_matches_the_architecture(tmp_path: Path) -> None:
    wheels = tmp_path / "wheels"
    write_wheel(wheels, "fastdep", tag="cp312-cp312-manylinux_2_17_x86_64.manylinux2014_x86_64")
    x86 = mini_project(tmp_path / "x86", ["fastdep"], 'runtime = "python3.12"')
    assert "fastdep/__init__.py" in _build(x86, wheel_dir=wheels).files

    arm = mini_project(tmp_path / "arm", ["fastdep"], 'architecture = "arm64"')
    with pytest.raises(PackageError) as caught:
        _build(arm, wheel_dir=wheels)
    assert caught.value.message == (
        "dependency 'fastdep' has no wheel for Lambda python3.12 on arm64 "
        "(manylinux2014_aarch64, cp312)"
    )
    assert "fastdep" in (caught.value.hint or "")


def test_missing_wheel_is_a_clear_error(tmp_path: Path) -> None:
    wheels = tmp_path / "wheels"
    write_wheel(wheels, "tinydep")
    root = mini_project(tmp_path, ["tinydep==1.0", "nowheel>=2"])
    with pytest.raises(PackageError) as caught:
        _build(root, wheel_dir=wheels)
    assert caught.value.message.startswith("dependency 'nowheel>=2' has no wheel for Lambda")
    assert not list((root / ".sls-py" / "aws" / "deps").glob("*/.complete"))


@pytest.mark.parametrize(
    ("setting", "message"),
    [
        ('architecture = "sparc"', "architecture = 'sparc' is not supported"),
        ('runtime = "nodejs20.x"', "runtime = 'nodejs20.x' is not a Lambda Python runtime"),
    ],
)
def test_bad_platform_settings(tmp_path: Path, setting: str, message: str) -> None:
    root = mini_project(tmp_path, [], setting)
    with pytest.raises(PackageError, match=message):
        _build(root)


def test_over_250_mb_unzipped_is_refused_before_zipping(tmp_path: Path) -> None:
    copy = _copy_work_magic(tmp_path)
    with (copy / "work_magic" / "model.bin").open("wb") as f:
        f.truncate(MAX_UNZIPPED_BYTES + 1)  # sparse: no disk space used
    with pytest.raises(PackageError) as caught:
        _build(copy, include_dependencies=False)
    assert "over Lambda's limit of 250.0 MB" in caught.value.message
    assert "work_magic 250.0 MB" in caught.value.message


def test_app_cannot_shadow_the_runtime(tmp_path: Path) -> None:
    copy = _copy_work_magic(tmp_path)
    (copy / "sls_py").mkdir()
    (copy / "sls_py" / "__init__.py").write_text("")
    with pytest.raises(PackageError, match=re.escape("sls_py/__init__.py, which would replace")):
        _build(copy, include_dependencies=False)


def test_bytecode_is_packed_when_this_python_matches_the_runtime(tmp_path: Path) -> None:
    import subprocess
    import sys
    import sysconfig

    copy = _copy_work_magic(tmp_path)
    here = f"python{sys.version_info.major}.{sys.version_info.minor}"
    pyproject = copy / "pyproject.toml"
    pyproject.write_text(
        pyproject.read_text().replace('runtime = "python3.12"', f'runtime = "{here}"')
    )
    built = _build(copy, include_dependencies=False, bytecode=True)
    tag = sys.implementation.cache_tag
    sources = [f for f in built.files if f.endswith(".py")]
    expected = {
        f"{f.rpartition('/')[0]}/__pycache__/{f.rpartition('/')[2][:-3]}.{tag}.pyc".lstrip("/")
        for f in sources
    }
    assert {f for f in built.files if f.endswith(".pyc")} == expected

    # Compiled in a fresh child each time: the same bytes without the cache too.
    shutil.rmtree(copy / ".sls-py")
    assert _build(copy, include_dependencies=False, bytecode=True).data == built.data

    # The runtime really uses the bytecode: break every source, imports still work.
    task = tmp_path / "task"
    with zipfile.ZipFile(_bytes_file(built.data)) as zf:
        zf.extractall(task)
    for name in sources:
        (task / name).write_text("raise SystemExit('source was read')\n")
    site = sysconfig.get_paths()["purelib"]
    proc = subprocess.run(
        [sys.executable, "-S", "-c", "import sls_py_aws.handler, work_magic.app; print('ok')"],
        cwd=task,
        env={"PYTHONPATH": os.pathsep.join([str(task), site]), "PYTHONDONTWRITEBYTECODE": "1"},
        capture_output=True,
        text=True,
    )
    assert (proc.returncode, proc.stdout.strip()) == (0, "ok"), proc.stderr
