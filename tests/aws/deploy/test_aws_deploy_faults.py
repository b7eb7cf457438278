"""Fault injection: stop a deploy after each step in turn, run it again, and
check that the stage ends exactly as a clean deploy leaves it, with nothing
created twice. Runs the engine in-process (many deploys; the CLI path is
covered by test_aws_deploy_cli) against a real moto server over HTTP."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from aws_deploy_support import Moto, copy_app, empty_snapshot, snapshot
from sls_py.config import load_project
from sls_py.errors import ProviderError
from sls_py.ui import PlainUI
from sls_py_aws import deploy as engine
from sls_py_aws.executor import FAIL_AFTER_ENV

pytestmark = pytest.mark.slow


@pytest.fixture
def aws_env(aws_env: Moto, monkeypatch: pytest.MonkeyPatch) -> Moto:
    """conftest.py's, with no failure injected from the environment."""
    monkeypatch.delenv(FAIL_AFTER_ENV, raising=False)
    return aws_env


def restage(snap: dict[str, Any], stage: str) -> dict[str, Any]:
    """The snapshot with the stage's name replaced, to compare two stages."""
    text = json.dumps(snap).replace(f"clonezero-{stage}", "clonezero-<stage>")
    text = text.replace(f"clonezero/{stage}", "clonezero/<stage>")  # the stage's config path
    return dict(json.loads(text.replace(f'"{stage}"', '"<stage>"')))


def neutral(name: str, stage: str) -> str:
    """A step's or state entry's name with the stage's name replaced."""
    return "<stage>" if name == stage else name.replace(f"clonezero-{stage}", "clonezero-<stage>")


class Deployer:
    """Deploys stages of one project in-process, sharing one AWS session."""

    def __init__(self, project: Path) -> None:
        self.project = load_project(project)
        self.cloud = engine.make_cloud(self.project.spec("dev"))

    def deploy(self, stage: str) -> list[tuple[str, str, str]]:
        spec = self.project.spec(stage)
        result = engine.deploy(spec, self.project, self.cloud, PlainUI(quiet=True))
        return [(s.action, s.kind, neutral(s.name, stage)) for s in result.applied]

    def state_file(self, stage: str) -> Path:
        return self.project.state_dir / "state" / "aws" / f"{stage}.json"


@pytest.mark.timeout(450)  # 32 steps (with the cache's network and the database), three deploys each
def test_interrupted_deploy_converges_after_every_step(
    aws_env: Moto, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """For each step N, on a stage of its own: stop after step N; then lose the
    record of step N, as if the process died between the AWS call and the state
    write, and stop again after one step (the rerun must adopt what exists, not
    make it twice); then deploy to the end. The stage must equal a clean deploy."""
    deployer = Deployer(copy_app(tmp_path))
    all_steps = deployer.deploy("fault-00")
    assert len(all_steps) == 32
    clean = restage(snapshot(aws_env, "clonezero", "fault-00"), "fault-00")

    for n in range(1, len(all_steps) + 1):
        stage = f"fault-{n:02d}"
        state_file = deployer.state_file(stage)
        monkeypatch.setenv(FAIL_AFTER_ENV, str(n))
        with pytest.raises(ProviderError, match=f"stopped after step {n} because {FAIL_AFTER_ENV}"):
            deployer.deploy(stage)
        recorded = json.loads(state_file.read_text())
        assert sorted(
            f"{key.partition(':')[0]}:{neutral(key.partition(':')[2], stage)}"
            for key in recorded["resources"]
        ) == sorted(f"{k}:{name}" for _, k, name in all_steps[:n])

        _, kind, name = all_steps[n - 1]
        lost = json.loads(state_file.read_text())
        key = f"{kind}:{stage if name == '<stage>' else name.replace('<stage>', stage)}"
        del lost["resources"][key]
        state_file.write_text(json.dumps(lost))
        monkeypatch.setenv(FAIL_AFTER_ENV, "1")
        with pytest.raises(ProviderError, match="stopped after step 1"):
            deployer.deploy(stage)
        assert (
            json.loads(state_file.read_text())["resources"].keys() == recorded["resources"].keys()
        )

        monkeypatch.delenv(FAIL_AFTER_ENV)
        assert deployer.deploy(stage) == all_steps[n:], f"rerun after step {n}"
        assert restage(snapshot(aws_env, "clonezero", stage), stage) == clean, f"after step {n}"
        assert deployer.deploy(stage) == [], f"a third deploy after step {n} changes nothing"


def test_fail_after_step_must_be_a_number(
    aws_env: Moto, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    deployer = Deployer(copy_app(tmp_path))
    monkeypatch.setenv(FAIL_AFTER_ENV, "soon")
    with pytest.raises(ProviderError, match=f"{FAIL_AFTER_ENV}='soon' is not a step number"):
        deployer.deploy("dev")
    assert snapshot(aws_env, "clonezero", "dev") == empty_snapshot()
