"""The conformance suite's database section (``resource.database``).

Mixed into :class:`~sls_py.testing.conformance.ProviderConformance`; a
provider that does not declare ``resource.database`` has these skipped with
that reason. The conformance app's ``db-ops`` function does the work against
the provider's database (its migrations are in the project's ``migrations/``).
"""

from __future__ import annotations

import uuid
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .harness import Harness


class DatabaseConformance:
    """Database tests: :name parameters, transactions, errors, migrations applied once."""

    def need(self, harness: Harness, *capabilities: str) -> None:  # provided by the suite
        raise NotImplementedError

    def test_database_params_transactions_and_migrations(self, conformance: Harness) -> None:
        self.need(conformance, "invoke", "resource.database")
        run = uuid.uuid4().hex[:10]
        inv = conformance.invoke("db-ops", {"run": run})
        assert inv.error is None, inv.error
        expected: dict[str, Any] = {
            "inserted": 1,
            # the transaction that raised left nothing ("b"); the one that failed on a
            # duplicate key left nothing ("e"); the committed one left both rows
            "duplicate": "DatabaseError",
            "rows": [{"name": "a", "n": 1}, {"name": "c", "n": 3}, {"name": "d", "n": 4}],
            "literal": [{"text": ":not_a_param", "n": 42}],
            "updated": 3,
            "syntax_error": {"type": "DatabaseError", "has_message": True},
            # 002_seed.sql inserts one row: applied twice it would fail or leave two
            "seed": [{"n": 1}],
            "migrations": ["001_items.sql", "002_seed.sql"],
        }
        assert inv.result == expected
        again = conformance.invoke("db-ops", {"run": run + "x"})
        assert again.error is None, again.error
        assert again.result["seed"] == [{"n": 1}]

    def test_database_error_unhandled_over_http_is_502(self, conformance: Harness) -> None:
        self.need(conformance, "trigger.http", "resource.database")
        r = conformance.http(
            "POST", "/db-ops", {"content-type": "application/json"}, b'{"run": "x", "fail": true}'
        )
        assert (r.status, r.json()) == (502, {"message": "Internal server error"})
        inv = conformance.invoke("db-ops", {"run": "y", "fail": True})
        assert inv.error is not None
        assert inv.error.type == "DatabaseError"
        assert "no_such_table_here" in inv.error.message
