"""The local resource driver: buckets as folders, SQLite tables, through the app's handles."""

from __future__ import annotations

import json
import multiprocessing
import os
from pathlib import Path

import pytest
from sls_py.runtime import Context, HttpRequest, Response, execute
from sls_py.runtime.resources import Bucket, ResourceError, Table, use_driver
from sls_py_local.resources import TMP_PREFIX, InvalidKey, LocalDriver, check_key


@pytest.fixture
def driver(tmp_path: Path):
    drv = LocalDriver(root=str(tmp_path / "state"))
    use_driver(drv)
    yield drv
    use_driver(None)


def test_bucket_objects_are_files_under_the_bucket_folder(
    driver: LocalDriver, tmp_path: Path
) -> None:
    photos = Bucket("uploads")
    photos.put("photos/a.jpg", b"\xff\xd8jpeg")
    photos.put("notes.txt", "héllo")
    folder = tmp_path / "state" / "buckets" / "uploads"
    assert (folder / "photos" / "a.jpg").read_bytes() == b"\xff\xd8jpeg"
    assert (folder / "notes.txt").read_bytes() == "héllo".encode()
    assert photos.list() == ["notes.txt", "photos/a.jpg"]
    assert photos.list("photos/") == ["photos/a.jpg"]
    assert photos.get("notes.txt") == "héllo".encode()
    # a file put there by hand is an object too
    (folder / "photos" / "b.jpg").write_bytes(b"by hand")
    assert photos.list("photos/") == ["photos/a.jpg", "photos/b.jpg"]
    photos.delete("photos/a.jpg")
    photos.delete("photos/b.jpg")
    photos.delete("photos/missing.jpg")  # no error, as S3
    assert photos.list() == ["notes.txt"]
    assert not (folder / "photos").exists(), "an emptied prefix folder is removed"
    with pytest.raises(KeyError):
        photos.get("photos/a.jpg")
    # atomic writes leave no temporary files behind, and never in the bucket
    assert list((tmp_path / "state" / "tmp").iterdir()) == []


@pytest.mark.parametrize(
    ("key", "why"),
    [
        ("../escape.txt", "'..'"),
        ("photos/../../escape.txt", "'..'"),
        ("/etc/passwd", "starts with '/'"),
        ("a\\..\\b", "backslash"),
        ("a\x00b", "NUL"),
        ("a//b", "empty segment"),
        ("photos/", "empty segment"),
        ("./a", "'.'"),
        ("", "non-empty"),
        (f"x/{TMP_PREFIX}abc", "reserved"),
        ("k" * 1025, "1024 bytes"),
    ],
)
def test_unsafe_keys_are_refused_with_a_clear_error(
    driver: LocalDriver, tmp_path: Path, key: str, why: str
) -> None:
    bucket = Bucket("uploads")
    for call in (
        lambda: bucket.put(key, b"x"),
        lambda: bucket.get(key),
        lambda: bucket.delete(key),
    ):
        with pytest.raises(InvalidKey) as err:
            call()
        assert why in str(err.value)
        assert "use a relative key such as" in str(err.value) or "reserved" in str(err.value)
    assert isinstance(err.value, ResourceError)
    assert not (tmp_path / "escape.txt").exists()
    assert not (tmp_path / "state" / "escape.txt").exists()


def test_symlink_out_of_the_bucket_is_refused(driver: LocalDriver, tmp_path: Path) -> None:
    folder = tmp_path / "state" / "buckets" / "uploads"
    folder.mkdir(parents=True)
    outside = tmp_path / "outside"
    outside.mkdir()
    os.symlink(outside, folder / "link")
    with pytest.raises(InvalidKey, match="outside its bucket"):
        Bucket("uploads").put("link/x.txt", b"x")
    assert list(outside.iterdir()) == []


def test_check_key_accepts_ordinary_keys() -> None:
    for key in ("a", "photos/2026/cat.jpg", "with space.txt", ".hidden", "a..b", "ünï/cödé"):
        assert check_key(key) == key


def test_table_with_key_only(driver: LocalDriver) -> None:
    catalog = Table("catalog", key="key")
    catalog.put({"key": "photos/a.jpg", "size": 3})
    catalog.put({"key": "photos/b.jpg", "size": 5, "tags": ["x"], "meta": {"w": 1.5}})
    catalog.put({"key": "photos/a.jpg", "size": 4})  # replaces
    assert catalog.get("photos/a.jpg") == {"key": "photos/a.jpg", "size": 4}
    assert catalog.get("nope") is None
    assert catalog.scan() == [
        {"key": "photos/a.jpg", "size": 4},
        {"key": "photos/b.jpg", "size": 5, "tags": ["x"], "meta": {"w": 1.5}},
    ]
    assert catalog.query("photos/b.jpg") == [
        {"key": "photos/b.jpg", "size": 5, "tags": ["x"], "meta": {"w": 1.5}}
    ]
    catalog.delete("photos/a.jpg")
    catalog.delete("photos/a.jpg")
    assert [i["key"] for i in catalog.scan()] == ["photos/b.jpg"]


def test_table_with_sort_key_queries_in_sort_order(driver: LocalDriver) -> None:
    events = Table("events", key="user", sort_key="n", sort_key_type="number")
    for n in (10, 2, 33, 1):
        events.put({"user": "ann", "n": n})
    events.put({"user": "bob", "n": 5})
    with pytest.raises(ResourceError, match="'user' is a string key, got int 1"):
        events.put({"user": 1, "n": 1})  # the declared key type is enforced
    assert events.query("ann") == [{"user": "ann", "n": n} for n in (1, 2, 10, 33)]
    assert events.query("bob") == [{"user": "bob", "n": 5}]
    assert events.get("ann", 10) == {"user": "ann", "n": 10}
    events.delete("ann", 10)
    assert events.get("ann", 10) is None
    with pytest.raises(ResourceError, match="needs a 'n' value"):
        events.get("ann")


def test_table_refuses_bad_items_and_changed_keys(driver: LocalDriver) -> None:
    table = Table("things", key="id")
    with pytest.raises(ResourceError, match="no 'id' attribute"):
        table.put({"name": "x"})
    with pytest.raises(ResourceError, match="is a string key, got list"):
        table.put({"id": [1, 2]})
    with pytest.raises(ResourceError, match="not JSON data"):
        table.put({"id": "a", "when": object()})
    table.put({"id": "a"})
    with pytest.raises(ResourceError, match="delete that file"):
        Table("things", key="other").get("a")


def _writer(root: str, worker: int, count: int) -> None:
    drv = LocalDriver(root=root)
    table = drv.table("shared", "shared", "id", None)
    for i in range(count):
        table.put({"id": f"{worker}-{i}", "worker": worker})


def test_table_is_safe_across_processes(tmp_path: Path) -> None:
    root = str(tmp_path / "state")
    ctx = multiprocessing.get_context("spawn")
    procs = [ctx.Process(target=_writer, args=(root, w, 50)) for w in range(3)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(60)
        assert p.exitcode == 0
    rows = LocalDriver(root).table("shared", "shared", "id", None).scan()
    assert sorted(r["id"] for r in rows) == sorted(f"{w}-{i}" for w in range(3) for i in range(50))


def test_driver_is_loaded_from_the_environment_like_a_worker_does(
    tmp_path: Path, monkeypatch
) -> None:
    root = tmp_path / "state"
    monkeypatch.setenv(
        "SLS_PY_RESOURCES",
        json.dumps(
            {
                "driver": "sls_py_local.resources:LocalDriver",
                "options": {"root": str(root)},
                "buckets": {"uploads": "clonezero-dev-uploads"},
            }
        ),
    )
    use_driver(None)
    try:
        Bucket("uploads").put("k.txt", b"v")
    finally:
        use_driver(None)
    assert (root / "buckets" / "uploads" / "k.txt").read_bytes() == b"v"


def test_a_refused_key_from_a_request_answers_400_not_502(driver: LocalDriver) -> None:
    store = Bucket("uploads")

    def save(request: HttpRequest) -> Response:
        store.put(request.path_params["key"], request.body)
        return Response(status=201)

    ctx = Context(request_id="r", function_name="save", stage="dev", deadline_ms=2**62)
    bad = HttpRequest(method="PUT", path="/x", path_params={"key": "../../etc/passwd"}, body=b"x")
    outcome = execute(save, bad, ctx)
    assert outcome.response is not None
    assert outcome.response.status == 400
    assert json.loads(outcome.response.encoded()[0]) == {
        "message": "object key '../../etc/passwd' contains '..' as a path segment; "
        "use a relative key such as 'photos/cat.jpg' (segments separated by '/')"
    }
    good = HttpRequest(method="PUT", path="/x", path_params={"key": "ok.txt"}, body=b"x")
    assert execute(save, good, ctx).response == Response(status=201)
