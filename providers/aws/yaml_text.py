"""Block YAML for a CloudFormation template, on the standard library (no PyYAML in
the tool's dependencies), deterministic: keys in the order given, strings quoted."""

from __future__ import annotations

import json
import re
from typing import Any

#: Plain words YAML 1.1 reads as booleans or null (CloudFormation's parser among them).
_SPECIAL = frozenset({"y", "yes", "n", "no", "true", "false", "on", "off", "null"})


def _bare(key: str) -> bool:
    """Whether ``key`` can be written unquoted and read back as the same string."""
    return bool(re.fullmatch(r"[A-Za-z][A-Za-z0-9_:.-]*", key)) and key.lower() not in _SPECIAL


def to_yaml(value: Any, indent: int = 0) -> str:
    """``value`` (dicts, lists, strings, numbers, booleans) as block YAML; strings are
    double-quoted JSON strings, which YAML reads as the same strings."""
    pad = "  " * indent
    if isinstance(value, dict):
        if not value:
            return "{}\n"
        lines = []
        for key, item in value.items():
            label = key if _bare(key) else json.dumps(key)
            if isinstance(item, (dict, list)) and item:
                lines.append(f"{pad}{label}:\n{to_yaml(item, indent + 1)}")
            else:
                lines.append(f"{pad}{label}: {to_yaml(item, indent + 1)}")
        return "".join(lines)
    if isinstance(value, list):
        if not value:
            return "[]\n"
        lines = []
        for item in value:
            if isinstance(item, (dict, list)) and item:
                body = to_yaml(item, indent + 1)
                lines.append(f"{pad}- {body[len(pad) + 2 :]}")
            else:
                lines.append(f"{pad}- {to_yaml(item, indent + 1)}")
        return "".join(lines)
    if isinstance(value, bool):
        return ("true" if value else "false") + "\n"
    if isinstance(value, (int, float)):
        return json.dumps(value) + "\n"
    if value is None:
        return "null\n"
    return json.dumps(str(value)) + "\n"
