"""``sls-py package --provider aws``: the Lambda zip, ``plan.json`` and ``template.yaml``.

Packaging makes no AWS call, so it runs in a pipeline without credentials.
What the account decides (its id, the region, whether a resource exists) is
therefore not known, and the files say so instead of guessing:

- ``code-<hash>.zip``: one per distinct package (today every function of an
  app shares one zip), built by :func:`sls_py_aws.package.build_package`, the
  same bytes ``deploy`` uploads.
- ``plan.json``: the plan against an *empty* account: what the deploy's planner
  yields when nothing of the stage exists yet (every resource created, in
  order), together with the desired state of each resource as the state file
  would record it. Account and region appear as ``${AWS::AccountId}`` and
  ``${AWS::Region}``; environment values as ``${env:NAME}`` references or
  digests, never in clear. ``plan.schema.json`` is its JSON Schema.
  ``sls-py plan --provider aws`` gives the live plan against an account.
- ``template.yaml``: plain CloudFormation creating the same resources
  (:mod:`sls_py_aws.template`).

``deploy --package`` (:func:`built_from`) reuses the zip as the deploy's
package and plans against the live account as ``deploy`` does.
"""

from __future__ import annotations

import base64
import hashlib
import io
import json
import zipfile
from pathlib import Path
from typing import Any

from sls_py.config import Project
from sls_py.packaging import DeployPackage, DeployPackageError, PackageResult
from sls_py.spec import Spec
from sls_py.ui import UI

from .environment import lambda_environment
from .model import HANDLER, Names, Resource, Target, desired_resources, physical_names
from .package import BuiltPackage
from .planner import plan_changes
from .state import State
from .template import ACCOUNT, ENV_TOKEN, REGION, template

PLAN_FILE = "plan.json"
PLAN_SCHEMA_FILE = "plan.schema.json"
TEMPLATE_FILE = "template.yaml"
PLAN_VERSION = 1
_ENV_REF = r"\$\{env:([A-Za-z_][A-Za-z0-9_]*)\}"

#: The JSON Schema of ``plan.json``.
PLAN_SCHEMA: dict[str, Any] = {
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    "title": "sls-py AWS plan",
    "description": "The plan of `sls-py deploy --provider aws` against an account holding "
    "nothing of the stage, and the desired state of every resource.",
    "type": "object",
    "additionalProperties": False,
    "required": ["version", "app", "stage", "provider", "basis", "account", "region", "steps", "resources"],
    "properties": {
        "version": {"const": PLAN_VERSION},
        "app": {"type": "string"},
        "stage": {"type": "string"},
        "provider": {"const": "aws"},
        "basis": {"const": "empty-account"},
        "account": {"type": "string"},
        "region": {"type": "string"},
        "steps": {
            "type": "array",
            "items": {
                "type": "object",
                "additionalProperties": False,
                "required": ["action", "kind", "name", "reason", "details"],
                "properties": {
                    "action": {"enum": ["create", "update", "delete"]},
                    "kind": {"type": "string"},
                    "name": {"type": "string"},
                    "reason": {"type": "string"},
                    "details": {
                        "type": "object",
                        "required": ["key"],
                        "properties": {
                            "key": {"type": "string"},
                            "changes": {"type": "array", "items": {"type": "string"}},
                        },
                    },
                },
            },
        },
        "resources": {
            "type": "array",
            "items": {
                "type": "object",
                "additionalProperties": False,
                "required": ["key", "kind", "name", "props"],
                "properties": {
                    "key": {"type": "string"},
                    "kind": {"type": "string"},
                    "name": {"type": "string"},
                    "props": {"type": "object"},
                },
            },
        },
    },
}


def zip_name(pkg: BuiltPackage) -> str:
    """``code-<first 16 hex of sha256>.zip``: named by its content."""
    return f"code-{base64.b64decode(pkg.code_sha256).hex()[:16]}.zip"


def symbolic_desired(spec: Spec, pkg: BuiltPackage, project_root: Path | None = None) -> list[Resource]:
    """The deploy's desired resources for the template's symbolic account and region;
    each ``${env:NAME}`` is left as a token (no secret is read)."""
    import re

    names = Names(spec, ACCOUNT, REGION)
    physical = physical_names(names)
    refs = {
        name: ENV_TOKEN.format(name)
        for fn in spec.functions
        for value in fn.environment.values()
        for name in re.findall(_ENV_REF, value)
    }
    environments = {
        fn.name: lambda_environment(spec, fn, names=physical, environ=refs) for fn in spec.functions
    }
    target = Target(account=ACCOUNT, region=REGION, code_sha256=pkg.code_sha256, code_size=pkg.size)
    return desired_resources(spec, target, environments, project_root=project_root)


def _placeholders(value: Any, tokens: dict[str, str]) -> Any:
    text = json.dumps(value, sort_keys=True)
    for token, replacement in tokens.items():
        text = text.replace(token, replacement)
    return json.loads(text)


def plan_document(spec: Spec, desired: list[Resource]) -> dict[str, Any]:
    """``plan.json``: the planner's steps against an empty state, and the desired state."""
    import re

    empty = State(path=Path("unused"), app=spec.app, stage=spec.stage)
    steps = plan_changes(desired, empty, None)
    resources = []
    for res in desired:
        props = res.recorded_props()
        if res.kind == "function":  # a reference stays a reference; other values are digests
            env = dict(props["environment"])
            for var, value in res.props["environment"].items():
                if "9sls9env9" in value:
                    env[var] = re.sub(r"9sls9env9([A-Za-z_][A-Za-z0-9_]*)9", r"${env:\1}", value)
            props["environment"] = env
        resources.append({"key": res.key, "kind": res.kind, "name": res.name, "props": props})
    tokens = {ACCOUNT: "${AWS::AccountId}", REGION: "${AWS::Region}"}
    doc = {
        "version": PLAN_VERSION,
        "app": spec.app,
        "stage": spec.stage,
        "provider": "aws",
        "basis": "empty-account",
        "account": "${AWS::AccountId}",
        "region": "${AWS::Region}",
        "steps": [s.to_data() for s in steps],
        "resources": resources,
    }
    return dict(_placeholders(doc, tokens))


def _json(value: Any) -> str:
    return json.dumps(value, indent=2, sort_keys=True) + "\n"


def write_artifacts(spec: Spec, project: Project, output: Path, ui: UI) -> PackageResult:
    """Write the zip, ``plan.json`` (+ schema) and ``template.yaml`` into ``output``."""
    from .deploy import build

    pkg = build(spec, project, ui)
    name = zip_name(pkg)
    desired = symbolic_desired(spec, pkg, project.root)
    (output / name).write_bytes(pkg.data)
    (output / PLAN_FILE).write_text(_json(plan_document(spec, desired)), encoding="utf-8")
    (output / PLAN_SCHEMA_FILE).write_text(_json(PLAN_SCHEMA), encoding="utf-8")
    doc = template(spec, desired, name)
    (output / TEMPLATE_FILE).write_text(
        "# CloudFormation template written by `sls-py package`.\n" + _yaml(doc), encoding="utf-8"
    )
    secrets = sorted(p for p, v in doc["Parameters"].items() if v.get("NoEcho"))
    summary = [
        f"{name}: the Lambda code of every function",
        f"{PLAN_FILE}: {len(desired)} resource(s), planned against an empty account",
        f"{TEMPLATE_FILE}: {len(doc['Resources'])} CloudFormation resource(s); upload {name} to a "
        f"bucket and pass ArtifactBucket (and CodeKey if the key is not {name})"
        + (f"; secret parameters: {', '.join(secrets)}" if secrets else ""),
    ]
    data = {
        "zips": {name: {"code_sha256": pkg.code_sha256, "size": pkg.size, "files": len(pkg.files)}},
        "functions": {fn.name: name for fn in spec.functions},
        "runtime": next((r.props["runtime"] for r in desired if r.kind == "function"), None),
        "architecture": next((r.props["architecture"] for r in desired if r.kind == "function"), None),
    }
    return PackageResult(summary=summary, data=data)


def built_from(package: DeployPackage, spec: Spec) -> BuiltPackage:
    """The deploy's package, from the zip of a checked deploy package."""
    zips = package.provider_data.get("zips") or {}
    functions = package.provider_data.get("functions") or {}
    names = sorted(set(functions.values()))
    if len(names) != 1 or names[0] not in zips or set(functions) != {fn.name for fn in spec.functions}:
        raise DeployPackageError(
            f"package {package.path} does not hold one zip for the functions of {spec.app!r}",
            hint="build it again with `sls-py package --provider aws`",
        )
    data = package.read_bytes(names[0])
    sha = base64.b64encode(hashlib.sha256(data).digest()).decode("ascii")
    if sha != zips[names[0]].get("code_sha256"):
        raise DeployPackageError(f"{names[0]} in package {package.path} does not match its manifest")
    with zipfile.ZipFile(io.BytesIO(data)) as zf:
        infos = zf.infolist()
    return BuiltPackage(
        data=data,
        code_sha256=sha,
        size=len(data),
        unzipped_size=sum(i.file_size for i in infos),
        handler=HANDLER,
        files=sorted(i.filename for i in infos),
    )


def _yaml(doc: dict[str, Any]) -> str:
    """``doc`` as block YAML, keys in the order given (the same bytes for the same doc)."""
    import yaml

    return yaml.safe_dump(doc, sort_keys=False, default_flow_style=False, allow_unicode=True, width=1000)
