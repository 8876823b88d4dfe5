import re
from pathlib import Path

from bot.settings import Settings

ROOT = Path(__file__).resolve().parent.parent


def test_every_setting_is_documented_in_env_example():
    text = (ROOT / ".env.example").read_text(encoding="utf-8")
    names = set(re.findall(r"^#?\s*([A-Z][A-Z0-9_]+)=", text, flags=re.M))
    missing = {f.upper() for f in Settings.model_fields} - names
    assert not missing, f"document these in .env.example: {sorted(missing)}"


def test_env_example_parses(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / ".env").write_text((ROOT / ".env.example").read_text(encoding="utf-8"))
    s = Settings()
    assert s.rec_k == 5 and s.kakao_enabled is False and s.discord_token is None


def test_id_lists_from_env(monkeypatch):
    monkeypatch.setenv("DISCORD_ADMIN_USER_IDS", "11, 22")
    monkeypatch.setenv("DISCORD_DEV_GUILD_IDS", "[33]")
    s = Settings(_env_file=None)
    assert s.discord_admin_user_ids == [11, 22]
    assert s.discord_dev_guild_ids == [33]


def test_token_is_secret(monkeypatch):
    monkeypatch.setenv("DISCORD_TOKEN", "super-secret-token")
    s = Settings(_env_file=None)
    assert "super-secret-token" not in repr(s) and "super-secret-token" not in str(s.model_dump())
