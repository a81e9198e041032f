"""The one settings object (docs/architecture.md, "Settings").

Environment variables use the prefix ``RECPRICE__`` and ``__`` between levels,
e.g. ``RECPRICE__KAFKA__BOOTSTRAP=127.0.0.1:19092`` or
``RECPRICE__SCORER__MAX_BATCH=128``. Factories take this object; nothing else
reads the environment.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal, Self

from pydantic import BaseModel, ConfigDict, Field, SecretStr, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from encoders.behaviour import StateConfig
from encoders.config import EncoderConfig
from pricing.config import PricingConfig
from pricing.shown_prices import DEFAULT_PER_USER

_FROZEN = ConfigDict(frozen=True, extra="forbid")

EventLoop = Literal["uvloop", "asyncio"]
SecurityProtocol = Literal["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"]
SaslMechanism = Literal["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"]
LogFormat = Literal["text", "json"]


class KafkaSettings(BaseModel):
    """Broker connection and topic layout."""

    model_config = _FROZEN

    bootstrap: str = Field(
        "127.0.0.1:19092", description="host:port of the broker (loopback for local runs)."
    )
    partitions: int = Field(4, ge=1, le=1024, description="Partitions of every topic we create.")
    replication: int = Field(1, ge=1, le=5, description="Replication factor of our topics.")
    min_insync_replicas: int = Field(
        1,
        ge=1,
        le=5,
        description="min.insync.replicas of our replicated topics: acks=all writes fail while "
        "fewer replicas are in sync (2 of 3 keeps writing with one broker down). At most "
        "the replication factor.",
    )
    session_timeout_s: float = Field(
        10.0, ge=1.0, le=300.0, description="Consumer session timeout; short = fast group joins."
    )
    heartbeat_s: float = Field(1.0, gt=0, le=60.0, description="Consumer heartbeat interval.")
    producer_linger_s: float = Field(
        0.005,
        ge=0,
        le=1.0,
        description="Producer batching delay (its effect on ingest: bench/RESULTS.md, "
        "'No producer linger').",
    )
    producer_max_batch_bytes: int = Field(
        524_288,
        ge=16_384,
        le=1_000_000,
        description="Largest producer batch per partition, above Kafka's default so that a "
        "scored batch's output records leave in fewer requests (bench/RESULTS.md, 'Producer "
        "batches up to 512 KiB'). At most the broker's message.max.bytes (1 MB).",
    )
    commit_interval_s: float = Field(
        1.0, gt=0, le=60.0, description="Offset commit interval (bounds re-delivery on restart)."
    )
    security_protocol: SecurityProtocol = Field(
        "PLAINTEXT",
        description="How every client connects: PLAINTEXT, SSL, SASL_PLAINTEXT or SASL_SSL.",
    )
    sasl_mechanism: SaslMechanism = Field(
        "SCRAM-SHA-512", description="SASL mechanism of the SASL_* protocols."
    )
    sasl_username: str | None = Field(None, description="SASL user name.")
    sasl_password: SecretStr | None = Field(
        None, description="SASL password (never logged); or give sasl_password_file."
    )
    sasl_password_file: Path | None = Field(
        None,
        description="File holding the SASL password (a mounted secret); trailing newline dropped.",
    )
    ssl_cafile: Path | None = Field(
        None,
        description="PEM file of the CA that signed the brokers' certificates (SSL, SASL_SSL).",
    )
    ssl_certfile: Path | None = Field(
        None, description="PEM client certificate, for brokers that require client authentication."
    )
    ssl_keyfile: Path | None = Field(None, description="PEM private key of ssl_certfile.")

    @model_validator(mode="after")
    def _credentials_fit(self) -> Self:
        # A half-configured connection would only fail later, at the broker.
        sasl = self.security_protocol.startswith("SASL_")
        given = (self.sasl_password is not None) + (self.sasl_password_file is not None)
        if sasl and (not self.sasl_username or given != 1):
            raise ValueError(
                f"security_protocol {self.security_protocol} needs sasl_username and exactly "
                "one of sasl_password, sasl_password_file"
            )
        if not sasl and (self.sasl_username or given):
            raise ValueError(
                f"SASL credentials are set but security_protocol is {self.security_protocol}"
            )
        if (self.ssl_certfile is None) != (self.ssl_keyfile is None):
            raise ValueError("ssl_certfile and ssl_keyfile go together")
        return self

    def password(self) -> str | None:
        """Return the SASL password, from the setting or its file."""
        if self.sasl_password_file is not None:
            return self.sasl_password_file.read_text().rstrip("\n")
        return self.sasl_password.get_secret_value() if self.sasl_password else None

    @model_validator(mode="after")
    def _min_insync_fits(self) -> Self:
        # More than the replicas would refuse every acks=all write.
        if self.min_insync_replicas > self.replication:
            raise ValueError(
                f"min_insync_replicas ({self.min_insync_replicas}) exceeds replication "
                f"({self.replication})"
            )
        return self


class TopicNames(BaseModel):
    """Topic names; ``prefix`` isolates replays and tests from live topics.

    `streams.topics.AppTopics` declares each topic once, with its full name and
    how it is created: read the names from there.
    """

    model_config = _FROZEN

    prefix: str = Field("", description="Prepended to every topic name and the app id.")
    events: str = Field("events", description="Input events, key user_id.")
    items: str = Field("items", description="Catalogue, key item_id, compacted.")
    recommendations: str = Field("recommendations", description="Ranked top-K per user.")
    price_updates: str = Field("price-updates", description="Bounded personalized prices.")
    dlq: str = Field("events.dlq", description="Invalid input with reason and origin.")
    scoring: str = Field("scoring-requests", description="Internal: users whose state changed.")
    purchases: str = Field(
        "purchases", description="Internal: valid purchase events, for attribution."
    )
    offers: str = Field(
        "offers", description="Internal: each user's price updates of one batch, for attribution."
    )
    audit: str = Field("price-audit", description="Every offer with all its inputs.")
    outcomes: str = Field("price-outcomes", description="Purchases attributed to offers.")
    experiment_events: str = Field(
        "experiment-events", description="Internal, 1 partition: per-arm counter increments."
    )
    experiment_shares: str = Field(
        "experiment-shares", description="Bandit traffic shares and arm stats, full history."
    )


class WorkerSettings(BaseModel):
    """One Faust worker process."""

    model_config = _FROZEN

    app_id: str = Field("recprice", description="Faust app id = consumer group id.")
    data_dir: Path = Field(
        Path(".recprice-data"), description="Local RocksDB tables (rebuilt from changelogs)."
    )
    standby_replicas: int = Field(
        0,
        ge=0,
        le=3,
        description="Standby table replicas per partition on other workers; they pay off when "
        "a partition's changelog takes longer to replay than the session timeout (README, "
        "'Restarts, failover and scale-out').",
    )
    log_level: str = Field("warning", description="Faust/aiokafka log level.")
    event_loop: EventLoop = Field(
        "uvloop",
        description="Worker event loop; uvloop runs Faust's per-message work faster "
        "(bench/RESULTS.md, 'The worker on uvloop').",
    )
    log_format: LogFormat = Field(
        "text",
        description="Log lines as text, or as one JSON object per line (level, logger, worker "
        "id, partition where known) for a log store to index.",
    )
    faust_monitor: bool = Field(
        False,
        description="Keep Faust's Monitor sensor (per-message counters for its web views, "
        'which the worker does not serve); its cost: bench/RESULTS.md, "The worker without '
        "Faust's Monitor sensor\".",
    )


class MetricsSettings(BaseModel):
    """The worker's HTTP endpoint: Prometheus metrics and health probes."""

    model_config = _FROZEN

    port: int = Field(
        0, ge=0, le=65535, description="Port of /metrics, /livez and /readyz; 0 = not served."
    )
    host: str = Field(
        "127.0.0.1", description="Address to bind (0.0.0.0 inside a container or pod)."
    )


class IngestSettings(BaseModel):
    """Batching of the ingest agent: one table read and write per user per batch."""

    model_config = _FROZEN

    max_batch: int = Field(1000, ge=1, le=100_000, description="Most events per ingest batch.")
    max_wait_s: float = Field(
        0.01, gt=0, le=10.0, description="Longest wait to fill an ingest batch (adds to latency)."
    )


class ScorerSettings(BaseModel):
    """Micro-batching of users into the user tower."""

    model_config = _FROZEN

    enabled: bool = Field(
        True, description="Run the scorer agent; off = ingest only (benchmarks, backfills)."
    )
    max_batch: int = Field(64, ge=1, le=4096, description="Most users per forward pass.")
    max_wait_s: float = Field(
        0.05,
        gt=0,
        le=10.0,
        description="Longest a user waits for others to join its batch, counted from its "
        "arrival: users that queued while the scorer was busy are scored right after.",
    )
    catalog_refresh_s: float = Field(
        1.0, gt=0, le=3600.0, description="How often new or changed items are re-embedded."
    )
    shown_prices_per_user: int = Field(
        DEFAULT_PER_USER,
        ge=1,
        le=10_000,
        description="Items per user whose last shown price and change time are kept in the "
        "shown_prices table for the max-step and cool-down bounds; an item shown less "
        "recently than this many others starts over from the base price band. At least "
        "encoder.top_k.",
    )


class ExperimentSettings(BaseModel):
    """The live bandit that moves traffic between pricing arms, and what it learns from."""

    model_config = _FROZEN

    bandit_interval_s: float = Field(
        5.0, gt=0, le=3600.0, description="Least time between two share updates."
    )
    outcome_max_batch: int = Field(
        1000,
        ge=1,
        le=100_000,
        description="Most offer and purchase records per outcome-agent batch: each user's "
        "last offers are read and written once per batch.",
    )
    outcome_max_wait_s: float = Field(
        0.01,
        gt=0,
        le=10.0,
        description="Longest wait to fill an outcome-agent batch (adds to attribution latency).",
    )


class Settings(BaseSettings):
    """Everything a recprice process needs; frozen, validated at load time."""

    model_config = SettingsConfigDict(
        env_prefix="RECPRICE__", env_nested_delimiter="__", extra="forbid", frozen=True
    )

    kafka: KafkaSettings = Field(KafkaSettings(), description="Broker.")
    topics: TopicNames = Field(TopicNames(), description="Topic names.")
    worker: WorkerSettings = Field(WorkerSettings(), description="Worker.")
    metrics: MetricsSettings = Field(MetricsSettings(), description="Metrics and health.")
    ingest: IngestSettings = Field(IngestSettings(), description="Ingest batching.")
    scorer: ScorerSettings = Field(ScorerSettings(), description="Scorer.")
    state: StateConfig = Field(StateConfig(), description="User state.")
    encoder: EncoderConfig = Field(EncoderConfig(), description="Model.")
    pricing: PricingConfig = Field(PricingConfig(), description="Pricing.")
    experiment: ExperimentSettings = Field(ExperimentSettings(), description="Bandit.")

    @model_validator(mode="after")
    def _one_scoring_fits(self) -> Self:
        # Fewer would forget some of a scoring's own prices as soon as they are shown.
        if self.scorer.shown_prices_per_user < self.encoder.top_k:
            raise ValueError(
                f"scorer.shown_prices_per_user ({self.scorer.shown_prices_per_user}) is "
                f"below encoder.top_k ({self.encoder.top_k})"
            )
        return self

    @property
    def app_id(self) -> str:
        """Consumer group and table-topic namespace, isolated by the topic prefix."""
        return f"{self.topics.prefix}{self.worker.app_id}"
