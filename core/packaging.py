"""Deploy packages: what ``sls-py package`` writes and ``sls-py deploy --package`` reads.

A package is a folder a pipeline can store, sign, inspect and promote. The
provider writes its own files into it (for ``aws``: the Lambda zips,
``plan.json`` and ``template.yaml``) through :func:`sls_py.hookspecs.sls_py_package`;
the core adds two files of its own, the same for every provider:

- ``spec.json``: the spec the package was built from. It holds no secret:
  ``${env:NAME}`` references stay references, resolved when the package is
  deployed.
- ``manifest.json``: the format marker, app, stage, provider and its version,
  the sls-py version, the sha256 of every other file, and the provider's own
  notes (:attr:`PackageResult.data`).

Writing is all-or-nothing: the provider writes into a fresh folder beside the
output, which then takes the output's place. An output folder that holds
anything but an earlier package is refused, never overwritten; an earlier
package there is replaced whole.

Reading (:func:`open_package`) refuses a folder that is not a package, a
package built for another provider, app or stage, and any file whose hash no
longer matches the manifest. :meth:`DeployPackage.read_bytes` checks the hash
again when the provider reads a file, so a file swapped after the check is
refused too.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .errors import SlsPyError

if TYPE_CHECKING:
    from .config import Project
    from .plugins import Provider
    from .spec import Spec
    from .ui import UI

MANIFEST = "manifest.json"
SPEC_FILE = "spec.json"
FORMAT = "sls-py-package"
FORMAT_VERSION = 1
#: The hooks behind ``sls-py package`` and ``sls-py deploy --package``.
PACKAGE_HOOK = "sls_py_package"
DEPLOY_HOOK = "sls_py_deploy_package"


class DeployPackageError(SlsPyError):
    """A deploy package cannot be written there, or is not one that can be deployed."""


@dataclass(frozen=True)
class PackageResult:
    """What a provider's :func:`~sls_py.hookspecs.sls_py_package` reports.

    :param summary: lines for the user (what was written, what to do next).
    :param data: JSON-able notes recorded in the manifest under ``provider_data``
        (for example which zip serves which function); read them back from
        :attr:`DeployPackage.provider_data`.
    """

    summary: list[str] = field(default_factory=list)
    data: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class DeployPackage:
    """A package checked by the core, handed to :func:`~sls_py.hookspecs.sls_py_deploy_package`.

    Its provider, app and stage are the ones being deployed, and every file it
    lists had the recorded hash when it was opened.
    """

    path: Path
    manifest: dict[str, Any]

    @property
    def files(self) -> dict[str, str]:
        """File name (relative, ``/``-separated) -> ``sha256:<hex>``."""
        return dict(self.manifest["files"])

    @property
    def provider_data(self) -> dict[str, Any]:
        """The provider's notes from :attr:`PackageResult.data`."""
        return dict(self.manifest.get("provider_data") or {})

    def read_bytes(self, name: str) -> bytes:
        """The bytes of file ``name``, checked against the manifest's hash."""
        want = self.files.get(name)
        if want is None:
            raise DeployPackageError(
                f"package {self.path} has no file {name!r} in its manifest",
                hint="build the package again with `sls-py package`",
            )
        try:
            data = (self.path / name).read_bytes()
        except OSError as exc:
            raise DeployPackageError(
                f"cannot read {name} of package {self.path}: {exc.strerror}",
                hint="build the package again with `sls-py package`",
            ) from None
        if file_hash(data) != want:
            raise _tampered(self.path, name)
        return data


def file_hash(data: bytes) -> str:
    """``sha256:<hex>`` of ``data``, as the manifest records it."""
    return "sha256:" + hashlib.sha256(data).hexdigest()


def _tampered(path: Path, name: str) -> DeployPackageError:
    return DeployPackageError(
        f"{name} in package {path} does not match the hash in its manifest (changed since it was built)",
        hint="deploy only packages as `sls-py package` wrote them; build it again",
    )


def _files(root: Path) -> list[str]:
    """Every file under ``root``, relative and ``/``-separated, sorted."""
    out: list[str] = []
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames.sort()
        rel = Path(dirpath).relative_to(root)
        out.extend((rel / name).as_posix() for name in filenames)
    return sorted(out)


def read_manifest(folder: Path) -> dict[str, Any] | None:
    """The manifest of ``folder`` if it is an sls-py package, else ``None``."""
    try:
        data = json.loads((folder / MANIFEST).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if not isinstance(data, dict) or data.get("format") != FORMAT:
        return None
    return data


def is_package(folder: Path) -> bool:
    """Whether ``folder`` holds an sls-py package (a manifest with the format marker)."""
    return read_manifest(folder) is not None


def is_staging(name: str) -> bool:
    """Whether a folder name is one :func:`write_package` uses while it works."""
    return name.startswith(".") and name.endswith((".sls-py-new", ".sls-py-old"))


def require_hook(provider: Provider, hook: str, command: str) -> None:
    """Refuse, before anything runs, a provider that does not implement ``hook``."""
    if not provider.implements(hook):
        supported = ", ".join(provider.commands()) or "none"
        raise DeployPackageError(
            f"provider {provider.name!r} cannot `{command}`: it does not implement {hook}",
            hint=f"commands {provider.name!r} supports: {supported}",
        )


def _check_output(output: Path) -> None:
    if output.is_symlink() or (output.exists() and not output.is_dir()):
        raise DeployPackageError(
            f"--output {output} exists and is not a folder",
            hint="give a new folder, or the folder of an earlier package to replace it",
        )
    if output.is_dir() and any(output.iterdir()) and not is_package(output):
        raise DeployPackageError(
            f"--output {output} is a folder that holds files and is not an sls-py package; "
            "refusing to overwrite it",
            hint="give a new or empty folder, or the folder of an earlier package to replace it",
        )


def write_package(
    provider: Provider, spec: Spec, project: Project, output: Path, ui: UI
) -> tuple[dict[str, Any], PackageResult]:
    """Have ``provider`` write the stage's package to ``output``, then add
    ``spec.json`` and ``manifest.json``; returns the manifest and the result."""
    from . import __version__

    require_hook(provider, PACKAGE_HOOK, "package")
    output = output.absolute()
    _check_output(output)
    staging = _fresh_dir(output, "new")
    try:
        output.parent.mkdir(parents=True, exist_ok=True)
        staging.mkdir()  # with the user's umask, unlike mkdtemp's 0700
    except OSError as exc:
        raise _unwritable(output, exc) from None
    try:
        result = provider.call(PACKAGE_HOOK, spec=spec, project=project, output=staging, ui=ui)
        if result is None:
            result = PackageResult()
        if not isinstance(result, PackageResult):
            raise DeployPackageError(f"provider {provider.name!r}: sls_py_package must return PackageResult")
        clash = {MANIFEST, SPEC_FILE} & set(_files(staging))
        if clash:
            raise DeployPackageError(
                f"provider {provider.name!r} wrote {sorted(clash)[0]}, a name the core keeps for itself"
            )
        (staging / SPEC_FILE).write_text(spec.model_dump_json(indent=2) + "\n", encoding="utf-8")
        manifest = {
            "format": FORMAT,
            "format_version": FORMAT_VERSION,
            "app": spec.app,
            "stage": spec.stage,
            "provider": provider.name,
            "provider_version": provider.info.version,
            "sls_py_version": __version__,
            "files": {name: file_hash((staging / name).read_bytes()) for name in _files(staging)},
            "provider_data": result.data,
        }
        (staging / MANIFEST).write_text(
            json.dumps(manifest, indent=2, sort_keys=True) + "\n", encoding="utf-8"
        )
        try:
            _swap_in(staging, output)
        except OSError as exc:
            raise _unwritable(output, exc) from None
    finally:
        if staging.exists():
            shutil.rmtree(staging, ignore_errors=True)
    return manifest, result


def _unwritable(output: Path, exc: OSError) -> DeployPackageError:
    return DeployPackageError(
        f"cannot write the package to --output {output}: {exc.strerror or exc}",
        hint="choose a folder you can write to",
    )


def _fresh_dir(output: Path, what: str) -> Path:
    """An unused name beside ``output`` (same file system, so renames are atomic)."""
    return output.parent / f".{output.name}.{uuid.uuid4().hex[:12]}.sls-py-{what}"


def _swap_in(staging: Path, output: Path) -> None:
    """Put ``staging`` where ``output`` is (an earlier package or an empty folder goes)."""
    if not output.exists():
        staging.rename(output)
        return
    old = _fresh_dir(output, "old")
    output.rename(old)
    try:
        staging.rename(output)
    except OSError:
        old.rename(output)  # put the earlier package back
        raise
    shutil.rmtree(old, ignore_errors=True)


def open_package(
    folder: Path, *, provider: str, app: str, stage: str, ui: UI | None = None
) -> tuple[DeployPackage, Spec]:
    """Check the package in ``folder`` for deploying ``app``'s ``stage`` with
    ``provider``; return it and the spec it was built from.

    :raises DeployPackageError: not a package; built for another provider, app
        or stage; a file missing or changed since it was built.
    """
    from pydantic import ValidationError

    from . import __version__
    from .spec import Spec

    hint = f"build one with `sls-py package --provider {provider} --stage {stage} --output {folder}`"
    if not folder.is_dir():
        raise DeployPackageError(f"--package {folder} is not a folder", hint=hint)
    manifest = read_manifest(folder)
    if manifest is None:
        raise DeployPackageError(
            f"--package {folder} is not an sls-py package (no {MANIFEST} written by `sls-py package`)",
            hint=hint,
        )
    if manifest.get("format_version") != FORMAT_VERSION:
        raise DeployPackageError(
            f"package {folder} has format version {manifest.get('format_version')!r}; "
            f"this sls-py reads version {FORMAT_VERSION}",
            hint=hint,
        )
    for what, want in (("provider", provider), ("app", app), ("stage", stage)):
        have = manifest.get(what)
        if have != want:
            raise DeployPackageError(
                f"package {folder} was built for {what} {have!r}, not {want!r}",
                hint=f"deploy it with the {what} it was built for, or {hint[0].lower()}{hint[1:]}",
            )
    files = manifest.get("files")
    if not isinstance(files, dict) or SPEC_FILE not in files:
        raise DeployPackageError(f"package {folder}: its manifest lists no {SPEC_FILE}", hint=hint)
    for name, want in sorted(files.items()):
        path = folder / name
        if ".." in Path(name).parts or Path(name).is_absolute():
            raise DeployPackageError(f"package {folder}: its manifest names a file outside it: {name}")
        if not path.is_file():
            raise DeployPackageError(f"package {folder} is missing {name}", hint=hint)
        try:
            data = path.read_bytes()
        except OSError as exc:
            raise DeployPackageError(f"cannot read {name} of package {folder}: {exc.strerror}") from None
        if file_hash(data) != want:
            raise _tampered(folder, name)
    package = DeployPackage(path=folder.absolute(), manifest=manifest)
    try:
        spec = Spec.model_validate_json(package.read_bytes(SPEC_FILE))
    except ValidationError as exc:
        raise DeployPackageError(
            f"package {folder}: {SPEC_FILE} is not a spec this sls-py reads ({exc.error_count()} error(s))",
            hint=hint,
        ) from None
    if ui is not None and manifest.get("sls_py_version") != __version__:
        ui.warn(
            f"package {folder} was built by sls-py {manifest.get('sls_py_version')}; this is {__version__}"
        )
    return package, spec


def deploy_package(provider: Provider, spec: Spec, project: Project, folder: Path, ui: UI) -> Any:
    """``sls-py deploy --package FOLDER``: check the package against the project's
    app and ``spec``'s stage, then hand it to the provider with its own spec."""
    require_hook(provider, DEPLOY_HOOK, "deploy --package")
    package, packed = open_package(folder, provider=provider.name, app=spec.app, stage=spec.stage, ui=ui)
    if packed != spec:
        ui.warn("the app has changed since this package was built; deploying the package as it was built")
        for note in provider.check(packed, project):
            ui.warn(note)
    return provider.call(DEPLOY_HOOK, spec=packed, project=project, package=package, ui=ui)
