"""Settings refuse nonsense, and the README's table says what the code does."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import ValidationError

from api.settings import Settings, settings_table


def test_env_prefix_and_types(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KB_DATA_DIR", "/srv/kb")
    monkeypatch.setenv("KB_TODAY", "2026-01-31")
    settings = Settings()
    assert settings.chroma_path == Path("/srv/kb/chroma")
    assert str(settings.today_date()) == "2026-01-31"


@pytest.mark.parametrize(
    "bad",
    [
        {"chunk_max_tokens": 10},
        {"chunk_overlap_tokens": 200},
        {"chunks_collection": "ab"},
        {"chunks_collection": "same", "documents_collection": "same"},
        {"log_level": "LOUD"},
        {"today": "yesterday"},
        {"auth": "dev", "host": "0.0.0.0"},
        {"auth": "none"},
    ],
)
def test_nonsense_is_refused(bad: dict) -> None:  # type: ignore[type-arg]
    with pytest.raises(ValidationError):
        Settings(**bad)


def test_readme_settings_table_is_current() -> None:
    readme = (Path(__file__).parents[1] / "README.md").read_text()
    assert settings_table() in readme, "README settings table is stale: paste settings_table()"
