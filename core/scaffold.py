"""``sls-py new``: create a project that runs and tests out of the box."""

from __future__ import annotations

from pathlib import Path
from string import Template

from .config import NAME_RE
from .errors import ConfigError

TEMPLATES = Path(__file__).parent / "templates" / "new"

#: template file -> path in the new project ("{module}" is the Python package)
LAYOUT = {
    "pyproject.toml.tmpl": "pyproject.toml",
    "app.py.tmpl": "{module}/app.py",
    "test_app.py.tmpl": "tests/test_app.py",
    "README.md.tmpl": "README.md",
    "gitignore.tmpl": ".gitignore",
}


def create_project(name: str, target: Path) -> Path:
    """Write a new project called ``name`` into ``target`` (which must be empty or absent)."""
    if not NAME_RE.match(name):
        raise ConfigError(
            f"project name {name!r} is not valid",
            hint="use lower-case letters, digits and '-', starting with a letter (e.g. clonezero)",
        )
    target = target.resolve()
    if target.exists() and (not target.is_dir() or any(target.iterdir())):
        raise ConfigError(
            f"{target} already exists and is not empty",
            hint="choose another name or --dir; sls-py new never overwrites files",
        )
    module = name.replace("-", "_")
    values = {"name": name, "module": module}
    files = {
        dest.format(module=module): Template((TEMPLATES / src).read_text(encoding="utf-8")).substitute(values)
        for src, dest in LAYOUT.items()
    }
    files[f"{module}/__init__.py"] = f'"""{name}."""\n'
    for rel, text in files.items():
        path = target / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
    return target
