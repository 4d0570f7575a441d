"""A throwaway PostgreSQL cluster (tests, benchmarks): initdb and pg_ctl in a directory we own."""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

from switchyard.procs import ProcessStartError, free_port


def postgres_bin_dir() -> Path:
    """The directory holding initdb and pg_ctl, or a clear error saying how to get them."""
    candidates = sorted(Path("/usr/lib/postgresql").glob("*/bin/pg_ctl"), reverse=True)
    found = shutil.which("initdb") and shutil.which("pg_ctl")
    if candidates:
        return candidates[0].parent
    if found:
        return Path(found).parent
    raise ProcessStartError("PostgreSQL not found: install it with `apt-get install -y postgresql`")


def _as_owner(argv: list[str]) -> list[str]:
    # initdb and pg_ctl refuse to run as root: run them as the postgres user instead.
    if os.geteuid() == 0:
        return ["runuser", "-u", "postgres", "--", *argv]
    return argv


@dataclass
class PostgresCluster:
    """A running cluster on 127.0.0.1 with trust authentication for the `postgres` role."""

    root: Path
    port: int
    bin_dir: Path

    @property
    def data_dir(self) -> Path:
        """The cluster's data directory."""
        return self.root / "data"

    def url(self, database: str = "postgres") -> str:
        """SQLAlchemy URL of one database in this cluster (asyncpg driver)."""
        return f"postgresql+asyncpg://postgres@127.0.0.1:{self.port}/{database}"

    def dsn(self, database: str = "postgres") -> str:
        """libpq/asyncpg DSN of one database in this cluster."""
        return f"postgresql://postgres@127.0.0.1:{self.port}/{database}"

    def _pg_ctl(self, *args: str) -> None:
        result = subprocess.run(
            _as_owner([str(self.bin_dir / "pg_ctl"), "-D", str(self.data_dir), *args]),
            capture_output=True,
            text=True,
            check=False,
        )
        if result.returncode != 0:
            log = (self.root / "postgres.log").read_text(errors="replace")[-3000:]
            raise ProcessStartError(f"pg_ctl {' '.join(args)} failed: {result.stderr}\n{log}")

    def start(self) -> None:
        """Start the server and wait until it accepts connections."""
        options = f"-p {self.port} -k {self.root} -c listen_addresses=127.0.0.1"
        self._pg_ctl("-o", options, "-l", str(self.root / "postgres.log"), "-w", "start")

    def stop(self, mode: str = "fast") -> None:
        """Stop the server."""
        self._pg_ctl("-m", mode, "-w", "stop")

    def destroy(self) -> None:
        """Stop the server if it runs and remove its files."""
        with contextlib.suppress(ProcessStartError):
            self.stop("immediate")
        shutil.rmtree(self.root, ignore_errors=True)


def start_cluster(
    *, durable: bool = False, extra_settings: dict[str, str] | None = None
) -> PostgresCluster:
    """initdb a new cluster in a temporary directory and start it on a free port.

    `durable=False` turns fsync off: fine for tests, which crash processes, not machines.
    """
    bin_dir = postgres_bin_dir()
    root = Path(tempfile.mkdtemp(prefix="switchyard-pg-"))
    root.chmod(0o755)
    if os.geteuid() == 0:
        shutil.chown(root, "postgres", "postgres")
    initdb = [str(bin_dir / "initdb"), "-D", str(root / "data"), "-U", "postgres", "-A", "trust"]
    result = subprocess.run(
        _as_owner([*initdb, "--no-sync", "-E", "UTF8"]), capture_output=True, text=True, check=False
    )
    if result.returncode != 0:
        shutil.rmtree(root, ignore_errors=True)
        raise ProcessStartError(f"initdb failed: {result.stderr}")
    settings = {"max_connections": "200", "shared_buffers": "128MB"}
    if not durable:
        settings.update(fsync="off", synchronous_commit="off", full_page_writes="off")
    settings.update(extra_settings or {})
    with (root / "data" / "postgresql.conf").open("a") as conf:
        for key, value in settings.items():
            conf.write(f"{key} = '{value}'\n")
    cluster = PostgresCluster(root, free_port(), bin_dir)
    try:
        cluster.start()
    except ProcessStartError:
        shutil.rmtree(root, ignore_errors=True)
        raise
    return cluster
