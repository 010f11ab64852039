"""Platform settings: one typed object, read from the environment (``OUP_*``)."""
from __future__ import annotations

import os
from functools import cache
from pathlib import Path
from typing import Literal

from pydantic import Field, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from oup.job_cpu import JobCPU, cpu_list

ROOT = Path(__file__).resolve().parent.parent


class Settings(BaseSettings):
    """Everything configurable, with defaults that run the embedded demo."""

    model_config = SettingsConfigDict(env_prefix="OUP_", extra="ignore")

    data_dir: Path = Field(ROOT / "data", description="working data: store, generated config, grids")
    catalog_dir: Path = Field(ROOT / "collections", description="the catalogue folder")
    database_url: str | None = Field(
        None, description="store URL; default: GeoPackage file <data_dir>/oup.gpkg")
    db_pool_size: int = Field(4, ge=1, description="PostGIS connections each process keeps "
                                                   "in its pool")
    mqtt_url: str | None = Field(
        None, description="MQTT broker URL: mqtt://[user[:pass]@]host[:port], mqtts:// for "
                          "TLS, ?protocol=3.1.1 for brokers without MQTT 5; default: the "
                          "demo's broker started by `oup serve --live` (127.0.0.1:1883)")
    live_broker: Literal["auto", "mosquitto", "embedded"] = Field(
        "auto", description="the broker `oup serve --live` starts without OUP_MQTT_URL: "
                            "Mosquitto if installed (auto), else the embedded demo one")
    live_broker_port: int = Field(1883, description="its port, on 127.0.0.1")
    ingest_client_id: str = Field(
        "oup-ingest-1", description="MQTT client id of `oup ingest`: fixed, so its session "
                                    "(and the messages queued for it) survives restarts")
    # Empty by default: a plain subscription, which Mosquitto 2.0 restores from its
    # persistence file after a restart; it does not restore shared ones (see README)
    ingest_group: str = Field("", description="shared-subscription group of the ingesters "
                                              "(empty: a plain subscription)")
    events_retention_hours: float = Field(
        24.0, gt=0, description="how long change events are kept for subscribers that "
                                "reconnect (Last-Event-ID)")
    events_mqtt_url: str | None = Field(
        None, description="broker URL of `oup events relay`, with the credentials that may "
                          "publish to oup/events/# (default: OUP_MQTT_URL)")
    events_relay: bool = Field(
        True, description="`oup serve` with a broker also runs `oup events relay` (turn "
                           "off where several API servers share a broker: run one relay)")
    mqtt_public_url: str | None = Field(
        None, description="the broker as subscribers reach it (AsyncAPI, rel=hub links); "
                          "default: OUP_MQTT_URL without credentials")
    mqtt_ws_public_url: str | None = Field(
        None, description="the broker's WebSocket listener as browsers reach it, e.g. "
                          "ws://broker:9001 (AsyncAPI); default: none listed")
    host: str = Field("127.0.0.1", description="address `oup serve` listens on")
    port: int = Field(5000, description="port `oup serve` listens on")
    workers: int = Field(2, description="worker processes of `oup serve`")
    # gthread keeps connections alive (sync workers open one per request, and a load
    # of a few thousand req/s runs out of loopback ports); see benchmarks/README.md
    # The workers are asynchronous (uvicorn), so the change-event streams, which stay
    # open, cost a task each and no thread; the pygeoapi app runs in a pool of threads.
    threads: int = Field(4, description="threads per worker for the (WSGI) OGC API app")
    base_url: str | None = Field(None, description="public URL; default http://host:port")
    tile_cache: bool = Field(False, description="keep vector tiles on disk under "
                             "<data_dir>/tile-cache (re-made after an import)")
    tile_overview_from: int = Field(
        20_000, ge=0, description="a collection of polygons with at least this many features "
                                  "gets an overview at import, its vector tiles at zoom 12 and "
                                  "below cut from that (merged, simplified: oup/store/overview.py)")
    # the 3D tiles of written buildings: made by one worker's `oup aside` at a time
    tiles3d_nice: int = Field(5, ge=0, le=19, description=(
        "how much the process that makes the 3D tiles of written buildings (one beside "
        "each server worker, in a scheduling group of its own) yields the CPU to the "
        "requests (nice: of its thread and of its group)"))
    tiles3d_coarse_wait: float = Field(30.0, gt=0, description=(
        "seconds the coarse 3D tiles above written buildings wait at most while more "
        "writes come (their leaves are made first, always)"))
    overview_nice: int = Field(10, ge=0, le=19, description=(
        "how much the process that draws the low-zoom overview about written buildings "
        "again (one beside each server worker) yields the CPU to the requests and to the "
        "3D tiles (nice)"))
    overview_quiet: float = Field(1.0, ge=0, description=(
        "seconds without a written shape the overview waits for before it is drawn again "
        "(under a storm of writes: once, for all of them, after it)"))
    overview_wait: float = Field(30.0, ge=0, description=(
        "seconds a written shape waits at most for the overview (while writes keep coming; "
        "0: the overview is drawn at once after each write)"))
    page_limit: int = Field(10, description="default items per page")
    max_page_limit: int = Field(10000, description="largest limit a client may ask for")
    log_level: str = Field("WARNING", description="DEBUG, INFO, WARNING or ERROR")
    jwks_file: Path | None = Field(None, description="JWKS (JSON) of the trusted token issuer")
    jwt_issuer: str | None = Field(None, description="required iss of bearer tokens")
    jwt_audience: str | None = Field(None, description="required aud of bearer tokens")
    api_keys_file: Path | None = Field(None, description="YAML list of {name, sha256, roles}; "
                                             "default <data_dir>/api-keys.yml (`oup keys`)")
    audit_log: Path | None = Field(None, description="default <data_dir>/audit.log")

    processes_file: Path = Field(ROOT / "config" / "processes.yml", description=(
        "the processes offered (OGC API Processes) and the roles that may run each"))
    jobs_url: str | None = Field(None, description=(
        "where the job queue and the jobs table live: sqlite:///path or postgresql://...; "
        "default: the store's PostgreSQL database, else <data_dir>/jobs.sqlite"))
    jobs_retention_hours: float = Field(24.0, gt=0, description=(
        "how long a finished job and its results are kept"))
    jobs_sync_seconds: float = Field(30.0, gt=0, description=(
        "how long a synchronous execute waits for its job (then it answers 201, as an "
        "asynchronous one)"))
    # a waiting execute holds one of a server worker's `threads` for as long as its job
    # runs: four of them held all four, and a map's request waited for a job to end
    jobs_sync_waiting: int = Field(2, ge=0, description=(
        "synchronous executes one server worker waits on at once (each holds one of its "
        "OUP_THREADS; at most OUP_THREADS - 1); one more is answered 201 at once, as an "
        "asynchronous one, so that the other requests always find a thread"))
    jobs_stale_seconds: float = Field(30.0, gt=0, description=(
        "a running job whose worker has not beaten for this long is taken back"))
    jobs_attempts: int = Field(2, ge=1, description=(
        "runs of a job whose worker stopped, before it fails"))
    jobs_timeout_seconds: float = Field(600.0, gt=0, description="longest run of a job")
    worker_threads: int = Field(2, ge=1, description="jobs one `oup worker` runs at once")
    # not 19: beside other busy processes a worker at 19 gets next to no CPU (its jobs
    # did not finish within the 30 s of a synchronous execute on a machine at load 20)
    worker_nice: int = Field(10, ge=0, le=19, description=(
        "how much `oup worker` yields the CPU to the API on the same machine (nice; its "
        "PostgreSQL backends too, where it may set theirs)"))
    # Nice orders the worker after the API, yet a request still waits for a job's thread to
    # give up its core (about 1 ms more a request beside 4 jobs, measured per thread from
    # /proc/<tid>/schedstat); the idle class never makes a request wait. Not the default:
    # on a machine kept busy by anything else the jobs would get no CPU at all.
    worker_idle_class: bool = Field(False, description=(
        "the jobs' threads, and their PostgreSQL backends where the worker may, in Linux's "
        "idle scheduling class (SCHED_IDLE) and, as root with cgroup v1's cpu controller, "
        "in the CPU group oup-jobs marked idle: they take a core only when nothing else "
        "wants it. For a worker on the API's machine whose API latency comes first; the "
        "worker's heartbeat keeps its normal class, so a job that waits is not taken back"))
    # a job that gives way at once still leaves its core's caches cold for the API: on 2
    # cores, 4 jobs in the idle class on one core: the API's p99 +6 % to +30 %, on both
    # +28 % (benchmarks/LOG.md)
    worker_cpus: str | None = Field(None, description=(
        "the cores the jobs' threads, and their PostgreSQL backends where the worker may, "
        "run on, as a Linux CPU list (1-3,5); default every core. Leaving the API a core "
        "of its own keeps its latency beside running jobs"))
    job_threads: int = Field(default_factory=lambda: os.cpu_count() or 1, ge=1, description=(
        "threads one job computes on at once (sun-and-shadow unites this many steps' "
        "shadows beside its loop); default the machine's CPUs. At the worker's nice the "
        "API still comes first, but a running job takes every core the API leaves idle"))
    worker_statements: int = Field(1, ge=1, description=(
        "statements the jobs of one `oup worker` run in the store at once (the others "
        "wait): 1 keeps any number of running jobs to about one core"))

    @field_validator("worker_cpus")
    @classmethod
    def _cores(cls, value: str | None) -> str | None:
        if value:
            cpu_list(value)  # (ValueError: what is wrong with it)
        return value or None

    @property
    def job_cpu(self) -> JobCPU:
        """How the worker schedules its jobs' threads and backends (``oup.job_cpu``)."""
        return JobCPU(self.worker_nice, self.worker_idle_class,
                      cpu_list(self.worker_cpus) if self.worker_cpus else None)

    @property
    def jobs_database(self) -> str:
        if self.jobs_url:
            return self.jobs_url
        if self.database_url and self.database_url.startswith(("postgresql:", "postgres:")):
            return self.database_url
        return f"sqlite:///{(self.data_dir / 'jobs.sqlite').resolve()}"

    @property
    def store_url(self) -> str:
        return self.database_url or f"gpkg://{(self.data_dir / 'oup.gpkg').resolve()}"

    @property
    def keys_file(self) -> Path:
        return self.api_keys_file or self.data_dir / "api-keys.yml"

    @property
    def broker_url(self) -> str:
        return self.mqtt_url or f"mqtt://127.0.0.1:{self.live_broker_port}"

    @property
    def public_url(self) -> str:
        return (self.base_url or f"http://{self.host}:{self.port}").rstrip("/")


@cache
def get_settings() -> Settings:
    return Settings()
