"""The core's configuration: one object, read once from `ASG_*` environment variables.

Every setting has a working default, so `asg-server` with no environment runs the embedded
stack (SQLite under ./var). Flags of `asg-server` and the `asg` commands override the
environment. Only entry points (`asg-server`, `asg`) call `Settings.from_env`; everything below
them is handed the object, the ledger's and ARC's parts included, so one bad variable is
refused at start with its name (docs/configuration.md) rather than deep in a running core.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from asg_common.config import masked, secret
from asg_grpc.domain.settlement import MAX_MONEY
from asg_grpc.domain.tasks import CONSENSUS_METHODS, DEFAULT_CONSENSUS_METHOD
from asg_grpc.domain.tiers import SANDBOX, Tier, TierConfigError, default_tiers, parse_tiers
from asg_grpc.domain.webhooks import ATTEMPT_TIMEOUT
from asg_grpc.store.open import IDEMPOTENCY_TTL, SqliteUrl, StoreOptions, parse_store_url, sqlite_url

SYNCHRONOUS_LEVELS = ("OFF", "NORMAL", "FULL", "EXTRA")
LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")
# Only "local" runs the ledger inside the core; testnet and mainnet broadcast to ARC.
NETWORKS = ("local", "testnet", "mainnet")
DEFAULT_GENESIS_SATS = 1_000_000 * 100_000_000  # 1M BSV: ample for local runs, well below MAX_MONEY
DEFAULT_ARC_TIMEOUT = 30.0  # seconds for the whole POST; ARC itself waits at most X-MaxTimeout (5 s default)
DEFAULT_WOC_URL = "https://api.whatsonchain.com"


class SettingsError(ValueError):
    """A setting has a value we cannot use; the message names the variable."""


def _store(env: Env) -> str | None:
    """ASG_STORE parsed now, so a bad URL stops the core at start (exit 2) with its name."""
    raw = env.get("ASG_STORE") or None
    if raw is not None:
        try:
            parse_store_url(raw)
        except ValueError as exc:
            raise SettingsError(f"ASG_STORE is not a store URL: {exc}") from None
    return raw


Env = Mapping[str, str]

STACK_RECORD = "stack.json"  # under state_dir(): what the last `asg dev` started (docs/cli.md)


def state_dir(env: Env) -> Path | None:
    """`$XDG_STATE_HOME/asg-refinery`, else `$HOME/.local/state/asg-refinery`; None without either
    (an explicit environment without them, as tests pass, never sees this machine's record)."""
    base = env.get("XDG_STATE_HOME") or (env.get("HOME") and str(Path(env["HOME"]) / ".local" / "state"))
    return Path(base) / "asg-refinery" if base else None


def recorded_stack(env: Env) -> dict[str, str]:
    """The data dir and addresses `asg dev` recorded, so the `asg` commands find that stack from
    any directory; {} when there is no record, it cannot be read, or its data dir is gone."""
    where = state_dir(env)
    if where is None:
        return {}
    try:
        record = json.loads((where / STACK_RECORD).read_text())
    except (OSError, ValueError):
        return {}
    if not isinstance(record, dict) or not Path(str(record.get("data_dir", ""))).is_dir():
        return {}
    return {k: str(v) for k, v in record.items() if k in ("data_dir", "grpc_addr", "http_addr")}


def record_stack(env: Env, data_dir: Path, grpc_addr: str, http_addr: str) -> Path | None:
    """Written by `asg dev` once its stack is up; read back by `recorded_stack`."""
    where = state_dir(env)
    if where is None:
        return None
    where.mkdir(parents=True, exist_ok=True)
    path = where / STACK_RECORD
    record = {"data_dir": str(data_dir.resolve()), "grpc_addr": grpc_addr, "http_addr": http_addr}
    path.write_text(json.dumps(record, indent=2) + "\n")
    return path


def _int(env: Env, name: str, default: int, minimum: int = 0, maximum: int | None = None) -> int:
    raw = env.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        raise SettingsError(f"{name} must be an integer, got {raw!r}") from None
    if value < minimum:
        raise SettingsError(f"{name} must be at least {minimum}, got {value}")
    if maximum is not None and value > maximum:
        raise SettingsError(f"{name} must be at most {maximum}, got {value}")
    return value


def _float(env: Env, name: str, default: float, minimum: float = 0.0) -> float:
    raw = env.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = float(raw)
    except ValueError:
        raise SettingsError(f"{name} must be a number, got {raw!r}") from None
    if value < minimum:
        raise SettingsError(f"{name} must be at least {minimum:g}, got {value:g}")
    return value


def _share(env: Env, name: str, default: float) -> float:
    """A fraction from 0 to 1."""
    value = _float(env, name, default)
    if not 0 <= value <= 1:  # False for NaN too
        raise SettingsError(f"{name} must be from 0 to 1, got {value:g}")
    return value


def _choice(env: Env, name: str, default: str, choices: tuple[str, ...], *, upper: bool = True) -> str:
    raw = env.get(name, "").strip() or default
    value = raw.upper() if upper else raw
    if value not in choices:
        raise SettingsError(f"{name} must be one of {', '.join(choices)}, got {raw!r}")
    return value


def _http_url(env: Env, name: str) -> str:
    """An http(s) URL without its trailing slash; "" when unset."""
    raw = env.get(name, "").strip()
    if not raw:
        return ""
    parts = urlsplit(raw)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise SettingsError(f"{name} must be an http(s) URL, got {raw!r}")
    return raw.rstrip("/")


def _listen_addr(env: Env, name: str) -> str:
    """HOST:PORT to listen on; "" when unset (off)."""
    raw = env.get(name, "").strip()
    if not raw:
        return ""
    host, _, port = raw.rpartition(":")
    if not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise SettingsError(f"{name} must be HOST:PORT with a port in 1..65535, got {raw!r}")
    return raw


def _switch(env: Env, name: str, default: bool) -> bool:
    raw = env.get(name, "").strip().lower()
    if not raw:
        return default
    if raw in ("1", "on", "true", "yes"):
        return True
    if raw in ("0", "off", "false", "no"):
        return False
    raise SettingsError(f"{name} must be on or off, got {raw!r}")


def _tiers(env: Env, sandbox_label_quota: int) -> dict[str, Tier]:
    """ASG_TIERS: a JSON object, or the path of a file holding one, laid over the defaults."""
    base = default_tiers(sandbox_label_quota)
    raw = env.get("ASG_TIERS", "").strip()
    if not raw:
        return base
    if raw[0] not in "{[":  # JSON, else a file path
        try:
            raw = Path(raw).read_text()
        except OSError as exc:
            raise SettingsError(f"ASG_TIERS names a file that cannot be read: {exc}") from None
    try:
        return parse_tiers(raw, base)
    except TierConfigError as exc:
        raise SettingsError(f"ASG_TIERS {exc}") from None


@dataclass(frozen=True)
class LedgerSettings:
    """The chain the core pays on (docs/ledger.md); the wallet file lives in the data dir."""

    network: str = "local"
    # WIF of the platform key; unset: generated once into <data dir>/wallet.wif (mode 0600).
    wallet_wif: str | None = secret()
    # Seconds between blocks of the local ledger.
    block_interval: float = 5.0
    # Minimum relay fee in satoshis per 1000 bytes of serialized transaction, rounded up.
    fee_per_kb: int = 100
    # Paid to the platform wallet once, by the genesis transaction of a fresh ledger.
    genesis_sats: int = DEFAULT_GENESIS_SATS


@dataclass(frozen=True)
class ArcSettings:
    """Where testnet/mainnet payouts are broadcast (docs/arc.md)."""

    arc_url: str
    # Sent as `Authorization: Bearer …` to ARC and nowhere else: never in a repr or a log.
    api_key: str | None = secret()
    timeout: float = DEFAULT_ARC_TIMEOUT
    woc_url: str = DEFAULT_WOC_URL


def _ledger(env: Env) -> LedgerSettings:
    return LedgerSettings(
        network=_choice(env, "ASG_BSV_NETWORK", LedgerSettings.network, NETWORKS, upper=False),
        wallet_wif=env.get("ASG_WALLET_WIF") or None,
        block_interval=_float(env, "ASG_BLOCK_INTERVAL", LedgerSettings.block_interval, 0.01),
        fee_per_kb=_int(env, "ASG_FEE_PER_KB", LedgerSettings.fee_per_kb, 0),
        genesis_sats=_int(env, "ASG_GENESIS_SATS", LedgerSettings.genesis_sats, 1, MAX_MONEY),
    )


def _arc(env: Env) -> ArcSettings:
    arc_url = _http_url(env, "ASG_ARC_URL")
    if not arc_url:
        raise SettingsError(
            "ASG_ARC_URL must be set to the ARC base URL (e.g. https://arc.example.com)"
            " with ASG_BSV_NETWORK=testnet or mainnet"
        )
    timeout = _float(env, "ASG_ARC_TIMEOUT", DEFAULT_ARC_TIMEOUT)
    if not 0 < timeout <= 600:
        raise SettingsError(f"ASG_ARC_TIMEOUT must be in (0, 600] seconds, got {timeout:g}")
    woc_url = _http_url(env, "ASG_WOC_URL") or DEFAULT_WOC_URL
    return ArcSettings(arc_url, env.get("ASG_ARC_API_KEY") or None, timeout, woc_url)


@dataclass(frozen=True)
class Settings:
    data_dir: Path = Path("var")
    grpc_addr: str = "127.0.0.1:50051"
    # NORMAL in WAL mode: a commit survives the process being killed; FULL also survives
    # power loss at the price of an fsync per commit (docs/storage.md).
    sqlite_synchronous: str = "NORMAL"
    # How long a write waits for another process's write lock before failing.
    sqlite_busy_timeout: float = 5.0
    # ASG_STORE: the store's URL (asg_grpc/store/open.py); None: SQLite at <data dir>/asg.sqlite3.
    store: str | None = None
    # Seconds an idempotency key replays its task (docs/api.md, Idempotency).
    idempotency_ttl: int = IDEMPOTENCY_TTL
    sandbox_label_quota: int = 500
    log_level: str = "INFO"
    # Guards RegisterWorker. Unset: generated once into <data dir>/operator_token (mode 0600).
    operator_token: str | None = secret()
    lease_seconds: float = 60.0
    max_in_flight: int = 256
    dispatch_window: int = 50_000
    worker_idle_timeout: float = 30.0
    # Off for extra core processes on a store another core already dispatches for.
    dispatch: bool = True
    # Webhook deliveries (and other URLs the server calls) may go to loopback, private,
    # link-local or metadata addresses only when this is on; tests and `asg dev` turn it on.
    allow_private_urls: bool = False
    # Development mode (`asg dev`, `make run`): webhook, callback and https-manifest URLs may also
    # be http:// to a loopback host (127.0.0.0/8, ::1, localhost), so a local receiver needs no
    # TLS. Off: https only, as in production (docs/configuration.md).
    dev_mode: bool = False
    # The most webhook deliveries attempted at once (by the core that dispatches).
    webhook_concurrency: int = 64
    # Seconds one delivery attempt may take, connecting and answering included.
    webhook_timeout: float = ATTEMPT_TIMEOUT
    # Multiplies the retry schedule (docs/webhooks.md); below 1 for tests, above to slow down.
    webhook_retry_scale: float = 1.0
    # Seals job credentials at rest (base64 of 32 bytes). Unset: generated once into
    # <data dir>/sealing_key (mode 0600). Changing it strands jobs still ingesting.
    sealing_key: str | None = secret()
    # Batch job manifests (docs/jobs.md): the most bytes read from one, the longest line.
    manifest_max_bytes: int = 1024**3
    manifest_max_line_bytes: int = 64 * 1024
    # How many jobs read their manifests at once (by the core that dispatches).
    ingest_concurrency: int = 2
    # Settlement (docs/settlement.md): the most tasks one payout transaction pays, and how long a
    # verified task may wait for its batch to fill.
    settle_batch: int = 1000
    settle_window: float = 1.0
    # Prices, label quota and per-key rate limit of each tier (docs/billing.md).
    tiers: dict[str, Tier] = field(default_factory=default_tiers)
    # Off: no per-key rate limit at all (tests and benchmarks that call from one key).
    rate_limit: bool = True
    # docs/api.md, Limits: jobs not yet completed or failed per customer; Work streams open at
    # once per worker; labels per second per worker (a token bucket over all its streams).
    max_jobs_in_flight: int = 10
    max_streams_per_worker: int = 16
    worker_label_rate: float = 2000.0
    worker_label_burst: int = 4000
    # The chain payouts go to, and ARC's endpoint when that chain is testnet or mainnet.
    ledger: LedgerSettings = field(default_factory=LedgerSettings)
    arc: ArcSettings | None = None
    # ASG_METRICS_ADDR: where the core serves Prometheus /metrics (docs/operations.md); "" = off.
    metrics_addr: str = ""
    # docs/quality.md: how a task that names no consensus_method is decided.
    consensus_method: str = DEFAULT_CONSENSUS_METHOD
    # How often the adaptive engine re-estimates its workers (EM, off the request path).
    consensus_refresh_seconds: float = 5.0
    # How often the dispatcher reads the registered workers and closes the tasks none of them
    # can label any more (docs/labeling.md, "When no worker is left").
    worker_roster_seconds: float = 5.0
    # docs/quality.md, "Gold share and traffic caps": the share of each worker's labels served
    # from gold tasks, and the most of a customer's labels one worker may give.
    gold_share: float = 0.05
    customer_share_cap: float = 0.25
    customer_share_min_labels: int = 100

    def __post_init__(self) -> None:
        # One source for the sandbox quota: `sandbox_label_quota` (kept for its callers).
        sandbox = self.tiers[SANDBOX]
        if sandbox.label_quota != self.sandbox_label_quota:
            tiers = {**self.tiers, SANDBOX: replace(sandbox, label_quota=self.sandbox_label_quota)}
            object.__setattr__(self, "tiers", tiers)

        if self.ledger.network != "local" and self.arc is None:
            raise SettingsError(f"ASG_ARC_URL must be set with ASG_BSV_NETWORK={self.ledger.network}")

    @classmethod
    def from_env(cls, env: Env | None = None) -> Settings:
        """Raises SettingsError naming the first variable that cannot be used."""
        env = dict(os.environ if env is None else env)
        ledger = _ledger(env)
        # Paying on a public chain, a payout recorded before its broadcast must survive power
        # loss too (docs/settlement.md): FULL unless ASG_SQLITE_SYNCHRONOUS says otherwise.
        public_chain = ledger.network != "local"
        default_sync = "FULL" if public_chain else cls.sqlite_synchronous
        sync = _choice(env, "ASG_SQLITE_SYNCHRONOUS", default_sync, SYNCHRONOUS_LEVELS)
        if public_chain and sync not in ("FULL", "EXTRA"):
            raise SettingsError(
                "ASG_SQLITE_SYNCHRONOUS must be FULL or EXTRA with ASG_BSV_NETWORK=testnet or mainnet:"
                " a payout recorded before its broadcast must survive a power loss"
            )
        # ASG_TIERS may set the sandbox quota too; when it does, it wins.
        tiers = _tiers(env, _int(env, "ASG_SANDBOX_LABEL_QUOTA", cls.sandbox_label_quota, 1))
        # The data dir and the core's address: the variable, else what `asg dev` recorded, else
        # the default (./var); flags override all of them (with_overrides). docs/cli.md.
        recorded = {} if env.get("ASG_DATA_DIR") else recorded_stack(env)
        return cls(
            data_dir=Path(env.get("ASG_DATA_DIR") or recorded.get("data_dir") or str(cls.data_dir)),
            grpc_addr=env.get("ASG_GRPC_ADDR") or recorded.get("grpc_addr") or cls.grpc_addr,
            sqlite_synchronous=sync,
            sqlite_busy_timeout=_float(env, "ASG_SQLITE_BUSY_TIMEOUT", cls.sqlite_busy_timeout, 0.0),
            store=_store(env),
            idempotency_ttl=_int(env, "ASG_IDEMPOTENCY_TTL", cls.idempotency_ttl, 1),
            sandbox_label_quota=tiers[SANDBOX].label_quota,
            log_level=_choice(env, "ASG_LOG_LEVEL", cls.log_level, LOG_LEVELS),
            operator_token=env.get("ASG_OPERATOR_TOKEN") or None,
            lease_seconds=_float(env, "ASG_LEASE_SECONDS", cls.lease_seconds, 0.1),
            max_in_flight=_int(env, "ASG_MAX_IN_FLIGHT", cls.max_in_flight, 1),
            dispatch_window=_int(env, "ASG_DISPATCH_WINDOW", cls.dispatch_window, 1),
            worker_idle_timeout=_float(env, "ASG_WORKER_IDLE_TIMEOUT", cls.worker_idle_timeout, 1.0),
            dispatch=_switch(env, "ASG_DISPATCH", cls.dispatch),
            allow_private_urls=_switch(env, "ASG_ALLOW_PRIVATE_URLS", cls.allow_private_urls),
            dev_mode=_switch(env, "ASG_DEV_MODE", cls.dev_mode),
            webhook_concurrency=_int(env, "ASG_WEBHOOK_CONCURRENCY", cls.webhook_concurrency, 1),
            webhook_timeout=_float(env, "ASG_WEBHOOK_TIMEOUT", cls.webhook_timeout, 0.01),
            webhook_retry_scale=_float(env, "ASG_WEBHOOK_RETRY_SCALE", cls.webhook_retry_scale, 0.0),
            sealing_key=env.get("ASG_SEALING_KEY") or None,
            manifest_max_bytes=_int(env, "ASG_MANIFEST_MAX_BYTES", cls.manifest_max_bytes, 1),
            manifest_max_line_bytes=_int(
                env, "ASG_MANIFEST_MAX_LINE_BYTES", cls.manifest_max_line_bytes, 256
            ),
            ingest_concurrency=_int(env, "ASG_INGEST_CONCURRENCY", cls.ingest_concurrency, 1),
            settle_batch=_int(env, "ASG_SETTLE_BATCH", cls.settle_batch, 1),
            settle_window=_float(env, "ASG_SETTLE_WINDOW", cls.settle_window, 0.0),
            tiers=tiers,
            rate_limit=_switch(env, "ASG_RATE_LIMIT", True),
            max_jobs_in_flight=_int(env, "ASG_MAX_JOBS_IN_FLIGHT", cls.max_jobs_in_flight, 1),
            max_streams_per_worker=_int(env, "ASG_MAX_STREAMS_PER_WORKER", cls.max_streams_per_worker, 1),
            worker_label_rate=_float(env, "ASG_WORKER_LABEL_RATE", cls.worker_label_rate, 0.001),
            consensus_method=_choice(
                env, "ASG_CONSENSUS_METHOD", cls.consensus_method, CONSENSUS_METHODS, upper=False
            ),
            consensus_refresh_seconds=_float(
                env, "ASG_CONSENSUS_REFRESH_SECONDS", cls.consensus_refresh_seconds, 0.01
            ),
            worker_roster_seconds=_float(env, "ASG_WORKER_ROSTER_SECONDS", cls.worker_roster_seconds, 0.01),
            gold_share=_share(env, "ASG_GOLD_SHARE", cls.gold_share),
            customer_share_cap=_share(env, "ASG_CUSTOMER_SHARE_CAP", cls.customer_share_cap),
            customer_share_min_labels=_int(
                env, "ASG_CUSTOMER_SHARE_MIN_LABELS", cls.customer_share_min_labels, 1
            ),
            worker_label_burst=_int(env, "ASG_WORKER_LABEL_BURST", cls.worker_label_burst, 1),
            ledger=ledger,
            arc=_arc(env) if public_chain else None,
            metrics_addr=_listen_addr(env, "ASG_METRICS_ADDR"),
        )

    @classmethod
    def from_flags(cls, data_dir: str | None, grpc_addr: str | None, env: Env | None = None) -> Settings:
        """`from_env` under the `--data-dir` and `--grpc` flags every command shares: a flag wins
        like its variable would, so a `--data-dir` also sets the recorded stack aside."""
        env = dict(os.environ if env is None else env)
        if data_dir:
            env["ASG_DATA_DIR"] = data_dir
        if grpc_addr:
            env["ASG_GRPC_ADDR"] = grpc_addr
        return cls.from_env(env)

    def with_overrides(self, **changes: Any) -> Settings:
        """Apply command-line flags that were given (None means not given)."""
        return replace(self, **{k: v for k, v in changes.items() if v is not None})

    @property
    def sqlite_path(self) -> Path:
        return self.data_dir / "asg.sqlite3"

    @property
    def store_url(self) -> str:
        """ASG_STORE, or the SQLite file under the data directory (the embedded default)."""
        return self.store or sqlite_url(self.sqlite_path)

    @property
    def aerospike_seeds(self) -> tuple[tuple[str, int], ...]:
        """The seed hosts of an aerospike:// store; () for SQLite (`asg dev` starts a node)."""
        parsed = parse_store_url(self.store_url)
        return () if isinstance(parsed, SqliteUrl) else parsed.hosts

    @property
    def store_options(self) -> StoreOptions:
        return StoreOptions(
            self.idempotency_ttl,
            self.sqlite_synchronous,
            self.sqlite_busy_timeout,
            ledger_path=self.data_dir / "ledger.sqlite3",
        )

    @property
    def operator_token_path(self) -> Path:
        return self.data_dir / "operator_token"

    @property
    def wallet_path(self) -> Path:
        return self.data_dir / "wallet.wif"

    def banner(self) -> dict[str, Any]:
        """The effective settings for the start-up log line, every secret masked."""
        shown: dict[str, Any] = masked(self)
        return shown
