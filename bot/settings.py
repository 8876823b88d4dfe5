"""All configuration in one place: defaults → ``.env`` → environment → CLI flags.

Everything an operator may change lives here (and, commented, in ``.env.example``), so no module
reads ``os.environ`` itself and tests build a ``Settings(...)`` instead of monkeypatching globals.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Literal

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict


class Settings(BaseSettings):
    """Runtime settings. Field names map to upper-case environment variables."""

    model_config = SettingsConfigDict(
        env_file=".env", env_file_encoding="utf-8", extra="ignore", case_sensitive=False
    )

    # --- storage -------------------------------------------------------------------------
    data_dir: Path = Field(Path("var"), description="Writable state: database, index, CF model.")
    database_path: Path | None = Field(None, description="SQLite file; default DATA_DIR/moodtune.sqlite3")
    database_url: SecretStr | None = Field(
        None, description="postgresql://user:pass@host:port/db selects the PostgreSQL store "
                          "(many replicas, one database); empty = SQLite at DATABASE_PATH.")
    store_message_text: bool = Field(False, description="Keep raw user messages (privacy: off).")
    shared_state: bool | None = Field(
        None, description="Replicas share one database: the conversation thread and rate limits "
                          "are read from the store first, memory only when it fails. Empty = "
                          "true for PostgreSQL (DATABASE_URL), false for SQLite.")

    # --- model / catalogue / index ---------------------------------------------------------
    model_dir: Path | None = Field(None, description="Classifier dir; default: the shipped model.")
    model_variant: Literal["auto", "int8", "fp32"] = "auto"
    model_threads: int = Field(1, ge=1, le=64, description="onnxruntime intra-op threads.")
    catalog_path: Path | None = Field(None, description="Catalogue file; default: shipped starter.")
    index_dir: Path | None = Field(None, description="Annoy index dir; default DATA_DIR/index")
    link_kind: Literal["auto", "melon", "youtube"] = Field(
        "auto", description="Track links: Melon page when known else YouTube search (auto), "
                            "always Melon (page or search), or always YouTube search.")
    annoy_n_trees: int = Field(10, ge=1, le=500)
    annoy_search_k: int = Field(1000, ge=-1)

    # --- ranking ---------------------------------------------------------------------------
    rec_k: int = Field(5, ge=1, le=10, description="Tracks per reply.")
    rec_candidates: int = Field(60, ge=5, le=1000, description="Annoy candidates before re-rank.")
    weight_mood: float = 1.0
    weight_cf: float = 0.35
    weight_popularity: float = 0.10
    mmr_lambda: float = Field(0.75, ge=0.0, le=1.0, description="1 = relevance only, 0 = variety only.")
    max_per_artist: int = Field(1, ge=1, le=10)
    rank_exploration: float = Field(
        0.05, ge=0.0, le=1.0,
        description="Gumbel noise on relevance: spreads exposure over more songs (0 = off).")
    no_repeat_last: int = Field(5, ge=0, le=100, description="Recent recommendations not repeated.")
    cf_path: Path | None = Field(None, description="CF artifact; default DATA_DIR/cf")
    cf_min_events: int = Field(5, ge=0, description="Events before a user gets CF scores.")

    # --- input limits ----------------------------------------------------------------------
    max_input_chars: int = Field(2000, ge=10, le=100_000)
    rate_limit_per_minute: int = Field(12, ge=1)
    feedback_rate_limit_per_minute: int = Field(
        60, ge=1, description="Feedback taps/reactions per user per minute (separate budget).")

    # --- engine capacity and per-user memory ------------------------------------------------
    engine_max_pending: int = Field(
        64, ge=1, le=100_000,
        description="Engine requests running or queued at once; past it adapters say 'busy'.")
    user_state_max_users: int = Field(
        20_000, ge=1, description="Users whose per-user state (no-repeat, thread) stays in memory.")
    user_state_ttl_s: float = Field(
        6 * 3600.0, gt=0, description="Idle seconds before a user's in-memory state is dropped.")
    cf_check_interval_s: float = Field(
        30.0, ge=0, description="How often to look for a new CF artifact (0 = on every request).")
    metrics_token: SecretStr | None = Field(
        None, description="When set, GET /metrics needs 'Authorization: Bearer <token>'.")

    # --- Discord ---------------------------------------------------------------------------
    discord_token: SecretStr | None = None
    discord_dev_guild_ids: Annotated[list[int], NoDecode] = Field(default_factory=list)
    discord_admin_user_ids: Annotated[list[int], NoDecode] = Field(default_factory=list)
    discord_admin_role_ids: Annotated[list[int], NoDecode] = Field(default_factory=list)
    discord_shard_count: int | None = Field(
        None, ge=1, le=10_000,
        description="Gateway shards (AutoShardedBot); empty = one connection, no sharding.")

    # --- web chat (one server: the page, its JSON API, admin, Kakao skill, health) ----------
    web_enabled: bool = Field(True, description="`moodtune run` serves the web chat page.")
    web_host: str = Field("127.0.0.1", description="Address the web server listens on.")
    web_port: int = Field(8000, ge=0, le=65535, description="Its port (0 = any free port).")
    web_cookie_secure: bool = Field(
        False, description="Mark the session cookie Secure (set it when served over https).")
    admin_token: SecretStr | None = Field(
        None, description="Bearer token for the admin dashboard; unset = admin disabled.")
    secret_key: SecretStr | None = Field(
        None, description="One secret for every replica of a deployment: web CSRF tokens and "
        "Kakao's delete confirmation are keyed with it, so a token one replica issued is valid "
        "on another. Unset = a key file beside the database (fine for one process).")

    # --- KakaoTalk -------------------------------------------------------------------------
    kakao_enabled: bool = False
    kakao_host: str = "127.0.0.1"
    kakao_port: int = Field(8080, ge=0, le=65535)
    kakao_secret: SecretStr | None = None
    kakao_callback_after_ms: int = Field(3500, ge=100, le=4900)
    kakao_max_body_bytes: int = Field(64 * 1024, ge=1024)
    kakao_body_timeout_s: float = Field(
        10.0, gt=0, le=120, description="A request body not fully received by then gets 408.")
    kakao_callback_hosts: Annotated[list[str], NoDecode] = Field(
        default_factory=lambda: ["bot-api.kakao.com"],
        description="Hosts a callbackUrl may point at (https only).")
    kakao_callback_allow_insecure: bool = Field(
        False, description="Tests/dev only: allow http and loopback/private callback targets.")

    # --- logging ---------------------------------------------------------------------------
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    log_json: bool = False

    @field_validator("database_url", mode="before")
    @classmethod
    def _check_database_url(cls, v: object) -> object:
        """Empty means SQLite; anything else must be a PostgreSQL URL (a typo such as
        ``sqlite:///…`` should stop the start, not silently fall back to the default file)."""
        raw = v.get_secret_value() if isinstance(v, SecretStr) else v
        if raw is None or (isinstance(raw, str) and not raw.strip()):
            return None
        if not str(raw).startswith(("postgresql://", "postgres://")):
            raise ValueError("DATABASE_URL must start with postgresql:// (or be empty for SQLite)")
        return v

    @field_validator("shared_state", "discord_shard_count", mode="before")
    @classmethod
    def _empty_is_default(cls, v: object) -> object:
        """``SHARED_STATE=`` / ``DISCORD_SHARD_COUNT=`` left empty in .env mean "the default"."""
        return None if isinstance(v, str) and not v.strip() else v

    @field_validator("kakao_callback_hosts", mode="before")
    @classmethod
    def _split_hosts(cls, v: object) -> object:
        """Accept "a.example,b.example" from .env; hosts compare case-insensitively."""
        if isinstance(v, str):
            v = [h for h in v.replace(" ", "").split(",") if h]
        if isinstance(v, list):
            return [str(h).strip().lower().rstrip(".") for h in v if str(h).strip()]
        return v

    @field_validator("discord_dev_guild_ids", "discord_admin_user_ids", "discord_admin_role_ids",
                     mode="before")
    @classmethod
    def _split_ids(cls, v: object) -> object:
        """Accept "1,2,3" from .env as well as JSON lists."""
        if isinstance(v, str):
            v = v.strip()
            if v.startswith("["):
                import json

                return json.loads(v)
            return [int(x) for x in v.replace(" ", "").split(",") if x]
        if isinstance(v, int):
            return [v]
        return v

    @property
    def resolved_shared_state(self) -> bool:
        """SHARED_STATE, defaulting to "yes" exactly when replicas can share the database: a
        PostgreSQL store is meant for many processes, a SQLite file for one."""
        if self.shared_state is not None:
            return self.shared_state
        return self.database_url is not None

    @property
    def resolved_database_path(self) -> Path:
        return self.database_path or self.data_dir / "moodtune.sqlite3"

    @property
    def resolved_index_dir(self) -> Path:
        return self.index_dir or self.data_dir / "index"

    @property
    def resolved_cf_path(self) -> Path:
        return self.cf_path or self.data_dir / "cf"

    @property
    def resolved_pseudonym_key_path(self) -> Path:
        """The per-install secret that keys log pseudonyms; kept beside the database."""
        db = self.resolved_database_path
        return db.with_name(db.name + ".pseudonym-key")
