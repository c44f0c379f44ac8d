"""A real PostgreSQL (Debian's postgresql-15) on 127.0.0.1, ready for Debezium's logical decoding: the source
database of the CDC sample (configmaps/cdc/) for the integration tests and `make demo`.

`wal_level=logical`, a LOGIN REPLICATION role with a password (scram-sha-256 over TCP), a database the
role owns (so Debezium may create and alter its publication). initdb and postgres refuse to run as root:
as root (CI) both run as the `postgres` system user the Debian package creates.

    python -m tests.harness.postgres_kit start --data-dir DIR [--password-dir DIR]  # start (or reuse), print the URL
    python -m tests.harness.postgres_kit url --data-dir DIR     # postgresql://USER@127.0.0.1:PORT/DB (no password)
    python -m tests.harness.postgres_kit port --data-dir DIR
    python -m tests.harness.postgres_kit sql --data-dir DIR 'CREATE TABLE ...'   # as the CDC role
    python -m tests.harness.postgres_kit stop --data-dir DIR
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import hashlib
import hmac
import json
import os
import pwd
import secrets
import shutil
import signal
import stat
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from types import TracebackType

from tests.harness.processes import KitError, free_port, pid_alive, spawn, terminate, wait_ready

STATE_FILE = "pg-state.json"
SERVER_USER = "postgres"  # the system user Debian's package creates; used only when we are root
MISSING = "PostgreSQL not found: run `make tools` (installs Debian's postgresql)"


def pg_bin() -> Path:
    """The directory holding initdb, postgres and psql: $CONNECT_RECONCILER_PG_BIN, else Debian's
    /usr/lib/postgresql/N/bin (15 first, the version CI installs), else wherever initdb is on PATH."""
    candidates: list[Path] = []
    if os.environ.get("CONNECT_RECONCILER_PG_BIN"):
        candidates.append(Path(os.environ["CONNECT_RECONCILER_PG_BIN"]))
    debian = Path("/usr/lib/postgresql")
    versions = sorted(debian.glob("*/bin"), key=lambda p: (p.parent.name != "15", p.parent.name))
    candidates += versions
    on_path = shutil.which("initdb")
    if on_path:
        candidates.append(Path(on_path).parent)
    for candidate in candidates:
        if all((candidate / tool).is_file() for tool in ("initdb", "postgres", "psql")):
            return candidate
    raise KitError(MISSING)


def available() -> bool:
    try:
        pg_bin()
    except KitError:
        return False
    return True


def scram_verifier(password: str, *, iterations: int = 4096) -> str:
    """The SCRAM-SHA-256 verifier PostgreSQL stores for `password` (RFC 5802/7677): the role is created
    with it, so the password itself never reaches the server (nor its log, should a statement fail)."""
    salt = os.urandom(16)
    salted = hashlib.pbkdf2_hmac("sha256", password.encode(), salt, iterations)
    client_key = hmac.new(salted, b"Client Key", "sha256").digest()
    server_key = hmac.new(salted, b"Server Key", "sha256").digest()

    def b64(raw: bytes) -> str:
        return base64.b64encode(raw).decode()

    stored_key = hashlib.sha256(client_key).digest()
    return f"SCRAM-SHA-256${iterations}:{b64(salt)}${b64(stored_key)}:{b64(server_key)}"


def _reachable(path: Path, uid: int, gid: int) -> bool:
    """Whether user uid/gid may traverse every ancestor of `path` (pytest's /tmp/pytest-of-root and
    /root are 0700: the postgres user could not reach a data dir below them)."""
    for parent in path.parents:
        if not parent.exists():
            continue  # created by us (as root, with the usual 0755)
        st = parent.stat()
        if st.st_uid == uid:
            bit = stat.S_IXUSR
        elif st.st_gid == gid:
            bit = stat.S_IXGRP
        else:
            bit = stat.S_IXOTH
        if not st.st_mode & bit:
            return False
    return True


class PostgresKit:
    """`start()` (or a context manager), then `url`, `port`, `password`, `sql()`; `stop()`, `destroy()`."""

    def __init__(
        self,
        data_dir: Path | str,
        *,
        user: str = "cdc",
        database: str = "cdc",
        startup_timeout: float = 60.0,
    ) -> None:
        self.data_dir = Path(data_dir).resolve()
        self.user, self.database = user, database
        self.startup_timeout = startup_timeout
        self.port = 0
        self.pid = 0
        self._process: subprocess.Popen[bytes] | None = None
        self._as_root = os.geteuid() == 0
        self.cluster = self._cluster_dir()

    # --- what the tests and the sample need ---------------------------------------------------------
    @property
    def url(self) -> str:
        """A libpq URL without the password (it is printed)."""
        return f"postgresql://{self.user}@127.0.0.1:{self.port}/{self.database}"

    @property
    def password_file(self) -> Path:
        return self.data_dir / "password"

    @property
    def password(self) -> str:
        """The CDC role's password, generated once per data dir and kept in `password_file` (0600)."""
        if not self.password_file.exists():
            self.data_dir.mkdir(parents=True, exist_ok=True)
            fd = os.open(self.password_file, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "w") as out:
                out.write(f"pg-{secrets.token_urlsafe(18)}")
        return self.password_file.read_text()

    def write_password(self, secret_dir: Path | str) -> Path:
        """Write the password as the key `password` of a Secret-volume-shaped directory (what a worker's
        DirectoryConfigProvider reads); returns the file."""
        target = Path(secret_dir)
        target.mkdir(parents=True, exist_ok=True)
        out = target / "password"
        out.write_text(self.password)
        out.chmod(0o600)
        return out

    def sql(self, statements: str, *, database: str | None = None, as_superuser: bool = False) -> str:
        """Run SQL with psql over the cluster's Unix socket (fed on stdin, never on the command line);
        returns psql's unaligned, tuples-only output. As the CDC role in its database unless `as_superuser`
        (then in `postgres`)."""
        cmd = [
            str(pg_bin() / "psql"),
            "-X",
            "-q",
            "-A",
            "-t",
            "-v",
            "ON_ERROR_STOP=1",
            "-h",
            str(self.cluster),
            "-p",
            str(self.port),
            "-U",
            SERVER_USER if as_superuser else self.user,
            "-d",
            database or ("postgres" if as_superuser else self.database),
        ]
        result = subprocess.run(
            cmd, input=statements, capture_output=True, text=True, timeout=60, check=False
        )
        if result.returncode != 0:
            raise KitError(f"psql failed (exit {result.returncode}): {result.stderr.strip()[-2000:]}")
        return result.stdout.strip()

    # --- lifecycle ---------------------------------------------------------------------------------
    @property
    def state_path(self) -> Path:
        return self.data_dir / STATE_FILE

    @property
    def log(self) -> Path:
        return self.data_dir / "logs" / "postgres.log"

    def load_state(self) -> bool:
        """Adopt a server started earlier (by `start` in another process); False if none is running."""
        if not self.state_path.exists():
            return False
        state = json.loads(self.state_path.read_text())
        self.port, self.pid, self.cluster = state["port"], state["pid"], Path(state["cluster"])
        if not pid_alive(self.pid):
            return False
        try:
            self.sql("SELECT 1", as_superuser=True)
        except KitError:
            return False
        return True

    def start(self) -> PostgresKit:
        binaries = pg_bin()
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self._init_cluster(binaries)
        self.port = free_port()
        settings = {
            "listen_addresses": "127.0.0.1",
            "port": self.port,
            "unix_socket_directories": self.cluster,  # 0700: only the server user (and root) get in
            "wal_level": "logical",
            "max_replication_slots": 10,
            "max_wal_senders": 10,
            "password_encryption": "scram-sha-256",
            # A throw-away test cluster on a 2-core machine: small, and no fsync.
            "max_connections": 30,
            "shared_buffers": "32MB",
            "fsync": "off",
            "synchronous_commit": "off",
            "full_page_writes": "off",
        }
        cmd = [str(binaries / "postgres"), "-D", str(self.cluster)]
        for key, value in settings.items():
            cmd += ["-c", f"{key}={value}"]
        self._process = spawn(self._as_server_user(cmd), log=self.log, cwd=self.cluster)
        self.pid = self._process.pid  # setpriv execs postgres: this is the postmaster's pid
        try:
            wait_ready(
                "postgres",
                lambda: self.sql("SELECT 1", as_superuser=True) == "1",
                alive=lambda: self._process is not None and self._process.poll() is None,
                log=self.log,
                timeout=self.startup_timeout,
            )
            self._bootstrap()
        except BaseException:
            self.stop()
            raise
        self.state_path.write_text(
            json.dumps({"port": self.port, "pid": self.pid, "cluster": str(self.cluster)})
        )
        return self

    def stop(self) -> None:
        """Fast shutdown (SIGINT): SIGTERM would be a "smart" shutdown, waiting for Debezium's replication
        connection to end by itself. SIGKILL to the group after 30 s."""
        if self.pid and pid_alive(self.pid):
            with contextlib.suppress(OSError):
                os.kill(self.pid, signal.SIGINT)
            deadline = time.monotonic() + 30
            while time.monotonic() < deadline:
                if self._process is not None and self._process.poll() is not None:
                    break
                if self._process is None and not pid_alive(self.pid):
                    break
                time.sleep(0.2)
            terminate(self.pid, self._process, grace=5)
        self.pid, self._process = 0, None
        self.state_path.unlink(missing_ok=True)

    def destroy(self) -> None:
        """Stop and delete the cluster (which may live outside the data dir, see `_cluster_dir`)."""
        self.stop()
        shutil.rmtree(self.cluster, ignore_errors=True)

    def __enter__(self) -> PostgresKit:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    # --- internals ---------------------------------------------------------------------------------
    def _server_ids(self) -> tuple[int, int]:
        if not self._as_root:
            return os.getuid(), os.getgid()
        try:
            entry = pwd.getpwnam(SERVER_USER)
        except KeyError:
            raise KitError(
                f"initdb and postgres refuse to run as root, and there is no `{SERVER_USER}` user to run them "
                "as: run `make tools` (installs Debian's postgresql, which creates it), or run as a non-root user"
            ) from None
        return entry.pw_uid, entry.pw_gid

    def _cluster_dir(self) -> Path:
        """`DATA_DIR/pgdata` when the server user can reach it; else (a data dir under /root or pytest's
        0700 temp root, as root) a directory of its own in the system temp dir, named after the data dir
        so that `stop` and a later `start` find it again."""
        here = self.data_dir / "pgdata"
        if not self._as_root:
            return here
        try:
            uid, gid = self._server_ids()
        except KitError:
            return here  # start() reports the missing user
        if _reachable(here, uid, gid):
            return here
        tag = hashlib.sha256(str(self.data_dir).encode()).hexdigest()[:12]
        return Path(tempfile.gettempdir()) / f"connect-reconciler-pg-{tag}"

    def _as_server_user(self, cmd: list[str]) -> list[str]:
        if not self._as_root:
            return cmd
        self._server_ids()  # a clear error when there is no such user
        # setpriv execs (runuser forks and waits): the pid we keep is the postmaster's own.
        return ["setpriv", f"--reuid={SERVER_USER}", f"--regid={SERVER_USER}", "--init-groups", "--", *cmd]

    def _init_cluster(self, binaries: Path) -> None:
        if (self.cluster / "PG_VERSION").exists():
            return
        shutil.rmtree(self.cluster, ignore_errors=True)  # a half-done initdb
        self.cluster.mkdir(parents=True, mode=0o700)
        uid, gid = self._server_ids()
        if self._as_root:
            os.chown(self.cluster, uid, gid)
            if not _reachable(self.cluster, uid, gid):
                raise KitError(f"the {SERVER_USER} user cannot reach {self.cluster}")
        cmd = [
            str(binaries / "initdb"),
            "-D",
            str(self.cluster),
            "-U",
            SERVER_USER,
            "-E",
            "UTF8",
            "--locale=C",
            "--auth=trust",  # replaced below by our pg_hba.conf
            "--no-sync",
            "--no-instructions",
        ]
        result = subprocess.run(
            self._as_server_user(cmd),
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
            cwd=self.cluster,
        )
        if result.returncode != 0:
            raise KitError(f"initdb failed: {result.stdout[-2000:]}{result.stderr[-2000:]}")
        hba = self.cluster / "pg_hba.conf"
        # The socket sits in the 0700 cluster dir, so `trust` there admits only the server user and root;
        # TCP (what Debezium uses, replication included) needs the password.
        hba.write_text(
            "local all all trust\n"
            "host all all 127.0.0.1/32 scram-sha-256\n"
            "host replication all 127.0.0.1/32 scram-sha-256\n"
        )
        if self._as_root:
            os.chown(hba, uid, gid)

    def _bootstrap(self) -> None:
        """The CDC role (LOGIN REPLICATION, password as a SCRAM verifier) and its database; idempotent."""
        role = self.user.replace('"', '""')
        exists = self.sql(f"SELECT 1 FROM pg_roles WHERE rolname = '{self.user}'", as_superuser=True)
        verb = "ALTER" if exists == "1" else "CREATE"
        self.sql(
            f"""{verb} ROLE "{role}" WITH LOGIN REPLICATION PASSWORD '{scram_verifier(self.password)}'""",
            as_superuser=True,
        )
        if self.sql(f"SELECT 1 FROM pg_database WHERE datname = '{self.database}'", as_superuser=True) != "1":
            self.sql(f'CREATE DATABASE "{self.database}" OWNER "{role}"', as_superuser=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.harness.postgres_kit")
    parser.add_argument("command", choices=["start", "stop", "url", "port", "sql"])
    parser.add_argument("statements", nargs="?", help="SQL for `sql` (default: read stdin)")
    parser.add_argument("--data-dir", required=True)
    parser.add_argument(
        "--password-dir", help="start: also write the password to DIR/password (a Secret volume)"
    )
    args = parser.parse_intermixed_args(argv)
    kit = PostgresKit(args.data_dir)
    try:
        if args.command == "start":
            if not kit.load_state():
                kit.stop()  # a stale state file: clear leftovers before starting afresh
                started = time.monotonic()
                kit.start()
                print(
                    f"PostgreSQL started in {time.monotonic() - started:.1f} s (log: {kit.log})",
                    file=sys.stderr,
                )
            if args.password_dir:
                kit.write_password(args.password_dir)
            print(kit.url)
        elif args.command in ("url", "port", "sql"):
            if not kit.load_state():
                raise KitError(f"no running postgres in {kit.data_dir}: run start first")
            if args.command == "url":
                print(kit.url)
            elif args.command == "port":
                print(kit.port)
            else:
                out = kit.sql(args.statements if args.statements is not None else sys.stdin.read())
                if out:
                    print(out)
        else:
            kit.load_state()
            kit.stop()
    except KitError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
