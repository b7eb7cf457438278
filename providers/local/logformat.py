"""How one log record of a function is written: a JSON line for the function's
log file and the text shown in the terminal.

Stdlib only: workers format their own records (see ``template._Outbox``), so
the gateway only appends text; :class:`~sls_py_local.logs.LogSink` formats the
records of the gateway and of slow invocations with the same function.
"""

from __future__ import annotations

import json
import time


def format_record(
    function: str, request_id: str, level: str, message: str, json_lines: bool
) -> tuple[str, str]:
    """One log record as a line of the function's log file and as terminal text
    (the same JSON line with ``json_lines``, else one prefixed line per line of
    ``message``), both ending with a newline."""
    line = (
        _encode(
            {
                "time": time.time(),
                "function": function,
                "request_id": request_id,
                "level": level,
                "message": message,
            }
        )
        + "\n"
    )
    if json_lines:
        return line, line
    prefix = f"[{function}] {request_id[:8] or '-':8} {level:5} "
    return line, "".join(prefix + part + "\n" for part in message.splitlines() or [""])


_encode = json.JSONEncoder().encode  # json.dumps' defaults, without its per-call checks
