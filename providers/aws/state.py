"""What a stage has on AWS, as recorded by apply after every step.

The file ``.sls-py/state/aws/<stage>.json`` maps each resource key
(``function:work-magic``) to the props it was last deployed with (secrets
replaced by digests) and the identifiers AWS gave it (``id``, ``arn``...).
It is written atomically after every step, so an interrupted deploy leaves a
file that says exactly what exists.
"""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sls_py.errors import ProviderError

STATE_VERSION = 1


@dataclass
class Entry:
    """One recorded resource."""

    kind: str
    name: str
    props: dict[str, Any]
    outputs: dict[str, Any] = field(default_factory=dict)

    @property
    def key(self) -> str:
        return f"{self.kind}:{self.name}"


@dataclass
class State:
    """The recorded resources of one stage, saved to ``path`` on every change."""

    path: Path
    app: str
    stage: str
    region: str = ""
    account: str = ""
    entries: dict[str, Entry] = field(default_factory=dict)

    @classmethod
    def load(cls, path: Path, app: str, stage: str) -> State:
        """Read the state file, or an empty state when there is none."""
        if not path.is_file():
            return cls(path=path, app=app, stage=stage)
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, json.JSONDecodeError) as exc:
            raise ProviderError(
                f"cannot read the deploy state {path}: {exc}",
                hint="restore it from a backup; without it sls-py forgets what it deployed",
            ) from None
        if data.get("version") != STATE_VERSION:
            raise ProviderError(f"{path}: unknown state version {data.get('version')!r}")
        entries = {
            key: Entry(
                kind=e["kind"], name=e["name"], props=e["props"], outputs=e.get("outputs", {})
            )
            for key, e in data.get("resources", {}).items()
        }
        return cls(
            path=path,
            app=data.get("app", app),
            stage=data.get("stage", stage),
            region=data.get("region", ""),
            account=data.get("account", ""),
            entries=entries,
        )

    def get(self, key: str) -> Entry | None:
        return self.entries.get(key)

    def output(self, key: str, name: str) -> Any:
        """An identifier of a recorded resource (``None`` if not recorded)."""
        entry = self.entries.get(key)
        return entry.outputs.get(name) if entry else None

    def record(self, entry: Entry) -> None:
        """Record a created or updated resource and save."""
        self.entries[entry.key] = entry
        self.save()

    def forget(self, key: str) -> None:
        """Drop a deleted resource and save."""
        if self.entries.pop(key, None) is not None:
            self.save()

    def save(self) -> None:
        """Write the file atomically (a crash leaves the old or the new file, never half)."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        data = {
            "version": STATE_VERSION,
            "app": self.app,
            "stage": self.stage,
            "region": self.region,
            "account": self.account,
            "resources": {
                key: {"kind": e.kind, "name": e.name, "props": e.props, "outputs": e.outputs}
                for key, e in sorted(self.entries.items())
            },
        }
        fd, tmp = tempfile.mkstemp(dir=self.path.parent, prefix=".state-", suffix=".json")
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            json.dump(data, fh, indent=2, sort_keys=True)
            fh.write("\n")
        os.replace(tmp, self.path)


def state_path(state_dir: Path, stage: str) -> Path:
    """``.sls-py/state/aws/<stage>.json`` under the project's state folder."""
    return state_dir / "state" / "aws" / f"{stage}.json"


@contextlib.contextmanager
def stage_lock(path: Path) -> Iterator[None]:
    """Hold an exclusive lock beside the state file ``path`` (deploy and remove
    of one stage never run at once from one checkout); fail at once if taken."""
    path.parent.mkdir(parents=True, exist_ok=True)
    lock_path = path.with_suffix(".lock")
    with open(lock_path, "a+") as fh:
        try:
            import fcntl
        except ImportError:  # Windows: no advisory locks; run one deploy at a time
            yield
            return
        try:
            fcntl.flock(fh.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise ProviderError(
                f"another deploy or remove of this stage is running ({lock_path} is locked)",
                hint="wait for it to finish, then run the command again",
            ) from None
        try:
            yield
        finally:
            fcntl.flock(fh.fileno(), fcntl.LOCK_UN)
