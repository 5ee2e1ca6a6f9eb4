"""One child process of the stack: start it, signal it, wait for it, and read its log."""

from __future__ import annotations

import asyncio
import contextlib
import signal
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

import psutil

POLL_SECONDS = 0.05


class StackError(RuntimeError):
    """The stack could not do what was asked; the message says which process and why."""


@dataclass
class ManagedProcess:
    """A long-running child with its own log file. Started in its own session, so a Ctrl-C at the
    terminal reaches only the launcher, which then stops the children in order."""

    name: str
    argv: list[str]
    log_path: Path
    env: dict[str, str] | None = None
    cwd: Path | None = None
    # The signal that asks for a clean stop: SIGINT is Postgres' "fast" shutdown.
    stop_signal: int = signal.SIGTERM
    stop_grace_seconds: float = 15.0
    grpc_port: int | None = None
    metrics_port: int | None = None
    # Records pid and start time while running, so a later launcher can clean up after a crashed one.
    pid_file: Path | None = None
    # Every pid this process ever had, and the descendants seen when it was stopped.
    pids: set[int] = field(default_factory=set)
    _popen: subprocess.Popen[bytes] | None = None

    @property
    def pid(self) -> int | None:
        return self._popen.pid if self._popen else None

    @property
    def running(self) -> bool:
        return self._popen is not None and self._popen.poll() is None

    @property
    def returncode(self) -> int | None:
        return self._popen.poll() if self._popen else None

    @property
    def grpc_address(self) -> str | None:
        return f"127.0.0.1:{self.grpc_port}" if self.grpc_port else None

    @property
    def metrics_url(self) -> str | None:
        return f"http://127.0.0.1:{self.metrics_port}/metrics" if self.metrics_port else None

    def start(self) -> None:
        """Spawns the process. Call it from the event loop's thread: Envoy sets PR_SET_PDEATHSIG,
        which fires when the *thread* that forked it ends, not only the process."""
        if self.running:
            raise StackError(f"{self.name} is already running (pid {self.pid})")
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        with self.log_path.open("ab") as log:
            log.write(f"--- {self.name} starting at {time.strftime('%Y-%m-%d %H:%M:%S')} ---\n".encode())
            log.flush()
            self._popen = subprocess.Popen(
                self.argv,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                env=self.env,
                cwd=self.cwd,
                start_new_session=True,
            )
        self.pids.add(self._popen.pid)
        if self.pid_file is not None:
            write_pid_file(self.pid_file, self._popen.pid)

    def send(self, sig: int) -> None:
        if self._popen is not None and self.running:
            self._popen.send_signal(sig)

    async def wait(self, seconds: float) -> bool:
        """Waits for the process to exit (reaping it); True if it did within `seconds`."""
        deadline = time.monotonic() + seconds
        while self.running:
            if time.monotonic() >= deadline:
                return False
            await asyncio.sleep(POLL_SECONDS)
        return True

    async def stop(self, sig: int | None = None, grace: float | None = None) -> None:
        """Sends `sig` (the clean-stop signal by default), SIGKILL after the grace period, and waits
        for the process and every descendant it had (Postgres backends) to be gone."""
        if not self.running:
            return
        descendants = self._descendants()
        self.send(self.stop_signal if sig is None else sig)
        if not await self.wait(self.stop_grace_seconds if grace is None else grace):
            self.send(signal.SIGKILL)
            await self.wait(10.0)
        await _wait_gone(descendants, seconds=10.0)
        if self.pid_file is not None:
            self.pid_file.unlink(missing_ok=True)

    async def kill(self) -> None:
        """SIGKILL, as a crash would; waits until it and its descendants are gone."""
        await self.stop(signal.SIGKILL, grace=10.0)

    def _descendants(self) -> list[psutil.Process]:
        try:
            children = psutil.Process(self.pid).children(recursive=True) if self.pid else []
        except psutil.NoSuchProcess:
            children = []
        self.pids.update(child.pid for child in children)
        return children

    def log_tail(self, lines: int = 30) -> str:
        """The end of the log, to explain a failure."""
        try:
            text = self.log_path.read_text(errors="replace")
        except FileNotFoundError:
            return "(no log)"
        return "\n".join(text.splitlines()[-lines:])

    def exited_error(self, waiting_for: str) -> StackError:
        return StackError(
            f"{self.name} exited with code {self.returncode} while waiting for {waiting_for}; "
            f"last lines of {self.log_path}:\n{self.log_tail()}"
        )


async def _wait_gone(procs: list[psutil.Process], seconds: float) -> None:
    """Waits for processes we do not reap ourselves; SIGKILLs any left after `seconds`."""
    deadline = time.monotonic() + seconds
    while True:
        alive = [p for p in procs if is_alive(p.pid)]
        if not alive:
            return
        if time.monotonic() >= deadline:
            for p in alive:
                with contextlib.suppress(psutil.NoSuchProcess):
                    p.kill()
            return
        await asyncio.sleep(POLL_SECONDS)


def is_alive(pid: int) -> bool:
    """True while pid runs; a zombie (exited, not yet reaped by its new parent) counts as gone."""
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


def kill_stale(pid_file: Path) -> None:
    """Kills a process left by a launcher that died without cleaning up (its pid file remains),
    if the pid still names that same process (same start time), with its descendants."""
    try:
        pid_text, created_text = pid_file.read_text().split()
        proc = psutil.Process(int(pid_text))
        if abs(proc.create_time() - float(created_text)) > 0.01:
            return
        # The parent first, so it cannot replace the children (Postgres restarts backends).
        procs = [proc, *proc.children(recursive=True)]
        for p in procs:
            with contextlib.suppress(psutil.NoSuchProcess):
                p.kill()
        psutil.wait_procs(procs, timeout=10)
    except (FileNotFoundError, ValueError, psutil.NoSuchProcess):
        pass
    finally:
        pid_file.unlink(missing_ok=True)


def write_pid_file(pid_file: Path, pid: int) -> None:
    pid_file.parent.mkdir(parents=True, exist_ok=True)
    pid_file.write_text(f"{pid} {psutil.Process(pid).create_time()}\n")
