"""``app.config(...)``: values read at call time with a TTL, typed through a
model, defaults, clear errors; the spec shows keys and defaults, never values;
the file store writes atomically with a 0600 secrets file."""

from __future__ import annotations

import json
import multiprocessing
import os
import stat
from pathlib import Path

import pytest
from pydantic import BaseModel, Field, SecretStr
from sls_py import App
from sls_py.configfile import FileConfigStore
from sls_py.runtime import MemoryDriver, use_driver
from sls_py.runtime.config import Config, ConfigInvalid, ConfigKeyError, ConfigMissing


class Settings(BaseModel):
    magic_word: SecretStr = Field(alias="magic-word")
    retries: int = 3
    region_name: str = "eu"


class CountingStore:
    """A store that counts reads (to see the TTL at work)."""

    def __init__(self, values: dict[str, str]) -> None:
        self.values, self.reads = values, 0

    def read(self) -> dict[str, str]:
        self.reads += 1
        return dict(self.values)


class CountingDriver(MemoryDriver):
    def __init__(self, store: CountingStore) -> None:
        super().__init__()
        self.store = store

    def config(self, name: str, physical: str) -> CountingStore:  # type: ignore[override]
        return self.store


@pytest.fixture
def store() -> CountingStore:
    store = CountingStore({"magic-word": "abc"})
    use_driver(CountingDriver(store), {"config_defaults": {"region-name": "us"}})
    yield store
    use_driver(None)


def test_values_are_kept_for_the_ttl_then_read_again(
    store: CountingStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    import sls_py.runtime.config as module

    now = [1000.0]
    monkeypatch.setattr(module.time, "monotonic", lambda: now[0])
    handle = Config("settings", ttl_s=5)
    assert handle.get("magic-word") == "abc"
    store.values["magic-word"] = "xyz"
    now[0] += 4.9
    assert (handle.get("magic-word"), store.reads) == ("abc", 1)
    now[0] += 0.2
    assert (handle.get("magic-word"), store.reads) == ("xyz", 2)
    handle.refresh()
    assert (handle.get("magic-word"), store.reads) == ("xyz", 3)


def test_ttl_zero_reads_every_call(store: CountingStore) -> None:
    handle = Config("settings", ttl_s=0)
    for word in ("a", "b", "c"):
        store.values["magic-word"] = word
        assert handle.get("magic-word") == word
    assert store.reads == 3


def test_store_beats_stage_default_beats_get_default(store: CountingStore) -> None:
    handle = Config("settings", ttl_s=0)
    assert handle.get("region-name", "code-default") == "us"  # the stage's default
    store.values["region-name"] = "ap"
    assert handle.get("region-name", "code-default") == "ap"
    assert handle.get("unset-key", "code-default") == "code-default"
    assert handle.get("unset-key", None) is None


def test_missing_key_names_the_command(store: CountingStore, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SLS_PY_STAGE", "prod")
    with pytest.raises(ConfigMissing) as info:
        Config("settings").get("api-token")
    assert str(info.value) == (
        "config key 'api-token' is not set for stage 'prod' and has no default: "
        "run `sls-py config set api-token VALUE --stage prod`"
    )
    with pytest.raises(ConfigKeyError, match="config key 'bad key' is not valid"):
        Config("settings").get("bad key")


def test_load_validates_into_the_model(store: CountingStore) -> None:
    store.values["retries"] = "7"
    loaded = Config("settings", model=Settings, ttl_s=0).load()
    assert isinstance(loaded, Settings)
    assert (loaded.magic_word.get_secret_value(), loaded.retries, loaded.region_name) == ("abc", 7, "us")
    assert "abc" not in repr(loaded)  # SecretStr keeps the value out of logs
    assert Config("settings", ttl_s=0).load() == {"magic-word": "abc", "retries": "7", "region-name": "us"}


def test_load_errors_name_keys_never_values(store: CountingStore, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SLS_PY_STAGE", "dev")
    store.values.clear()
    with pytest.raises(ConfigMissing, match=r"config key 'magic-word' is not set for stage 'dev'"):
        Config("settings", model=Settings, ttl_s=0).load()
    store.values.update({"magic-word": "hunter2", "retries": "many"})
    with pytest.raises(ConfigInvalid) as info:
        Config("settings", model=Settings, ttl_s=0).load()
    assert "retries: Input should be a valid integer" in str(info.value)
    assert "sls-py config set retries VALUE --stage dev" in str(info.value)
    assert "hunter2" not in str(info.value) and "many" not in str(info.value)


def test_a_driver_without_config_is_a_clear_error() -> None:
    class Old:
        pass

    use_driver(Old())  # type: ignore[arg-type]
    try:
        with pytest.raises(Exception, match="does not support config"):
            Config("settings").get("x")
    finally:
        use_driver(None)


def test_spec_holds_keys_and_defaults_never_store_values(tmp_path: Path) -> None:
    from sls_py.config import build_spec, load_project

    (tmp_path / "pyproject.toml").write_text(
        '[tool.sls-py]\napp = "m:app"\n[tool.sls-py.config]\nretries = 4\n'
        '[tool.sls-py.stages.dev.config]\nregion-name = "us"\n'
    )
    app = App("demo")
    app.config("settings", model=Settings, ttl_s=1.5)
    spec = build_spec(load_project(tmp_path), app, "dev")
    assert [c.model_dump() for c in spec.configs] == [
        {
            "name": "settings",
            "ttl_s": 1.5,
            "keys": ["magic-word", "retries", "region-name"],
            "defaults": {"retries": "4", "region-name": "us"},
        }
    ]
    assert spec.required_capabilities()["resource.config"] == "config 'settings'"
    assert build_spec(load_project(tmp_path), app, "prod").configs[0].defaults == {"retries": "4"}
    with pytest.raises(ValueError, match="declared twice"):
        app.config("settings")


def test_a_model_that_is_not_pydantic_is_refused(tmp_path: Path) -> None:
    from sls_py.config import build_spec, load_project
    from sls_py.errors import SpecError

    (tmp_path / "pyproject.toml").write_text('[tool.sls-py]\napp = "m:app"\n')
    app = App("demo")
    app.config("settings", model=dict)
    with pytest.raises(SpecError, match="is not a pydantic model"):
        build_spec(load_project(tmp_path), app, "dev")


# --- the file store ------------------------------------------------------------------


def test_file_store_keeps_secrets_apart_with_mode_0600(tmp_path: Path) -> None:
    st = FileConfigStore(tmp_path)
    assert st.set("greeting", "hi", secret=False) is True
    assert st.set("magic-word", "s3cret", secret=True) is True
    assert st.set("magic-word", "s3cret", secret=True) is False  # unchanged: no write
    assert json.loads((tmp_path / "config.json").read_text()) == {"greeting": "hi"}
    assert json.loads((tmp_path / "secrets.json").read_text()) == {"magic-word": "s3cret"}
    assert stat.S_IMODE((tmp_path / "secrets.json").stat().st_mode) == 0o600
    assert "s3cret" not in (tmp_path / "config.json").read_text()
    st.set("greeting", "hidden now", secret=True)  # a key lives in one file only
    assert (st.plain(), st.secrets()) == ({}, {"magic-word": "s3cret", "greeting": "hidden now"})
    assert st.unset(["greeting", "nope"]) == ["greeting"]
    assert st.read() == {"magic-word": "s3cret"}
    assert not [p.name for p in tmp_path.iterdir() if p.name.startswith(".config-tmp-")]


def test_file_store_reports_a_broken_file(tmp_path: Path) -> None:
    from sls_py.configfile import ConfigFileError

    (tmp_path / "config.json").write_text("{not json")
    with pytest.raises(ConfigFileError, match=r"config\.json is not valid JSON"):
        FileConfigStore(tmp_path).read()


def _writer(folder: str, worker: int, count: int) -> None:
    st = FileConfigStore(folder)
    for i in range(count):
        st.set(f"w{worker}", "x" * (i % 50) + str(i), secret=worker % 2 == 1)


def test_concurrent_writers_never_lose_keys_and_readers_never_see_torn_files(tmp_path: Path) -> None:
    """Four processes write while this one reads: every read parses, and no write is lost."""
    ctx = multiprocessing.get_context("fork")
    procs = [ctx.Process(target=_writer, args=(str(tmp_path), w, 60)) for w in range(4)]
    for p in procs:
        p.start()
    st = FileConfigStore(tmp_path)
    reads = 0
    while any(p.is_alive() for p in procs):
        st.read()  # would raise ConfigFileError on a torn file
        reads += 1
    for p in procs:
        p.join()
        assert p.exitcode == 0
    final = st.read()
    assert {k: v[-2:] for k, v in final.items()} == {f"w{w}": "59" for w in range(4)}
    assert reads > 0
    assert os.stat(tmp_path / "secrets.json").st_mode & 0o077 == 0
