"""The work-magic app, as in the talk.

- ``work-magic``: cast a spell on two numbers, behind an API key, with CORS.
- ``catalog-upload``: a photo uploaded under ``photos/`` is recorded in the
  catalog, the ``photos`` table of the ``catalog`` PostgreSQL database (its
  schema: the ``.sql`` migrations in ``migrations/``).
- ``spell-counts``: how many times each spell was cast, counted in the ``spells`` cache.
- ``nightly-report``: every night, a summary of the catalog is written to ``reports``;
  the catalog is counted in chunks by ``count-chunk`` invocations (a fan-out)
  whose counts are gathered and added up.

The magic word is config, read at call time: ``sls-py config set magic-word
WORD --secret --stage prod`` changes it in a running or deployed stage within
5 s, without a deploy. The dev stage has a default (``clonezero-token``, in
``pyproject.toml``) so the app works on a fresh machine.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from datetime import UTC, datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr
from sls_py import App, Context, HttpError, ScheduleEvent, UploadEvent, http, schedule, upload

app = App("clonezero", api_keys=["default"])

uploads = app.bucket("uploads")
reports = app.bucket("reports")
#: the photo catalog: PostgreSQL on every provider (Aurora through the Data API on AWS);
#: ``migrations/*.sql`` (relative to the project) create its ``photos`` table
catalog = app.database("catalog", migrations="migrations")
#: casts per spell (``cast:adder`` -> 3): a Redis-protocol cache on every provider
spells = app.cache("spells")
counting = app.fanout("count-chunk")
#: catalog keys per count-chunk invocation, and how many run at once
CHUNK = 50
PARALLEL = 4


class Settings(BaseModel):
    """The app's config: ``sls-py config set magic-word ... --secret``."""

    model_config = ConfigDict(populate_by_name=True)

    magic_word: SecretStr = Field(alias="magic-word")


settings = app.config("settings", model=Settings, ttl_s=5)

SPELLS = {
    "adder": lambda x, y: x + y,
    "subtractor": lambda x, y: x - y,
    "multiplier": lambda x, y: x * y,
    "divider": lambda x, y: x / y,
}


class Spell(BaseModel):
    """The payload of work-magic."""

    model_config = ConfigDict(populate_by_name=True, allow_inf_nan=False)  # "NaN" as a string too

    magic_word: str = Field(alias="magic-word")
    spell: str
    x: float
    y: float


def _number(value: float) -> int | float:
    return int(value) if float(value).is_integer() else value


@app.function(
    name="work-magic",
    memory_mb=128,
    timeout_s=10,
    triggers=[http("POST", "/work-magic", api_key=True, cors=True)],
)
def work_magic(spell: Spell, ctx: Context) -> dict[str, int | float]:
    """Cast ``spell`` on x and y, if the magic word is right."""
    expected = settings.load().magic_word.get_secret_value()
    if not expected or not hmac.compare_digest(spell.magic_word.encode(), expected.encode()):
        raise HttpError(403, "Wrong magic word")
    cast = SPELLS.get(spell.spell)
    if cast is None:
        raise HttpError(400, f"Unknown spell {spell.spell!r}; known spells: {', '.join(SPELLS)}")
    try:
        result = cast(spell.x, spell.y)
    except ZeroDivisionError:
        raise HttpError(400, "Cannot divide by zero") from None
    spells.incr(f"cast:{spell.spell}")
    ctx.logger.info("cast %s", spell.spell)
    return {"result": _number(result)}


@app.function(
    name="catalog-upload",
    memory_mb=256,
    timeout_s=30,
    triggers=[upload("uploads", prefix="photos/")],
)
def catalog_upload(event: UploadEvent, ctx: Context) -> dict[str, object]:
    """Record an uploaded photo's key, size and sha256 in the catalog."""
    data = uploads.get(event.key)
    when = event.time or datetime.now(UTC).isoformat()
    entry = {
        "key": event.key,
        "size": len(data),
        "sha256": hashlib.sha256(data).hexdigest(),
        "uploaded_at": when,
    }
    # an upload delivered twice, or a photo uploaded again, replaces its row
    catalog.execute(
        "INSERT INTO photos (key, size, sha256, uploaded_at) VALUES (:key, :size, :sha256, :at)"
        " ON CONFLICT (key) DO UPDATE SET size = excluded.size, sha256 = excluded.sha256,"
        " uploaded_at = excluded.uploaded_at",
        {**entry, "at": datetime.fromisoformat(when)},
    )
    ctx.logger.info("catalogued %s (%d bytes)", event.key, len(data))
    return entry


class Report(BaseModel):
    """What the nightly report says."""

    generated_at: str
    schedule_time: str
    photos: int
    total_bytes: int
    largest: str | None
    kind: Literal["catalog-summary"] = "catalog-summary"


@app.function(
    name="nightly-report",
    memory_mb=256,
    timeout_s=60,
    triggers=[schedule("cron(0 2 * * ? *)", name="nightly")],
    invokes=["count-chunk"],
)
def nightly_report(event: ScheduleEvent, ctx: Context) -> dict[str, object]:
    """Write a summary of the catalog to the reports bucket, counted in chunks."""
    keys = [str(row["key"]) for row in catalog.query("SELECT key FROM photos ORDER BY key")]
    parts = counting.map(keys, ctx, chunk=CHUNK, parallel=PARALLEL)
    largest = max(parts, key=lambda c: c["largest_size"], default=None)
    report = Report(
        generated_at=datetime.now(UTC).isoformat(),
        schedule_time=event.time,
        photos=sum(c["photos"] for c in parts),
        total_bytes=sum(c["total_bytes"] for c in parts),
        largest=largest["largest"] if largest else None,
    )
    day = event.time[:10]
    key = f"catalog/{day}.json"
    reports.put(key, json.dumps(report.model_dump(), indent=2), content_type="application/json")
    ctx.logger.info("report %s: %d photos counted in %d chunks", key, report.photos, len(parts))
    return {"report": key, "photos": report.photos}


@app.function(name="spell-counts", timeout_s=10, triggers=[http("GET", "/spells", api_key=True, cors=True)])
def spell_counts(query: dict[str, str], ctx: Context) -> dict[str, int]:
    """How many times each spell has been cast (successful casts, from the cache)."""
    return {name: int(spells.get(f"cast:{name}") or 0) for name in SPELLS}


@app.function(name="count-chunk", memory_mb=128, timeout_s=30)
def count_chunk(keys: list[str], ctx: Context) -> dict[str, object]:
    """Count one chunk of catalog keys: photos, bytes, and the largest photo."""
    if not keys:
        return {"photos": 0, "total_bytes": 0, "largest": None, "largest_size": -1}
    # one :kN parameter per key: portable SQL (PostgreSQL, the Data API, SQLite in tests)
    params = {f"k{i}": key for i, key in enumerate(keys)}
    listed = ", ".join(f":{name}" for name in params)
    rows = catalog.query(f"SELECT key, size FROM photos WHERE key IN ({listed}) ORDER BY key", params)
    sizes = {str(r["key"]): int(r["size"]) for r in rows}  # a photo gone since the listing: not counted
    largest = max(sizes, key=lambda k: sizes[k], default=None)
    return {
        "photos": len(sizes),
        "total_bytes": sum(sizes.values()),
        "largest": largest,
        "largest_size": sizes[largest] if largest else -1,
    }
