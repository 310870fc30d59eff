"""Throwaway Redis master + replica + sentinels on free loopback ports (never 6379).

Used by the Sentinel failover test; each process has its own directory and config
under the test's tmp path and is killed on :meth:`SentinelCluster.close`.
"""

from __future__ import annotations

import shutil
import signal
import subprocess
import time
import uuid
from pathlib import Path

import redis

from tests.stack import free_port


class SentinelCluster:
    def __init__(
        self,
        base: Path,
        sentinels: int = 2,
        *,
        password: str | None = None,
        sentinel_password: str | None = None,
    ) -> None:
        """``password``: the data nodes' ``requirepass`` (and ``masterauth``);
        ``sentinel_password``: the sentinels' own ``requirepass``."""
        self.base = base
        self.password = password
        self.sentinel_password = sentinel_password
        self.master_name = f"shop-{uuid.uuid4().hex[:6]}"
        self.server = shutil.which("redis-server") or "redis-server"
        self.processes: dict[int, subprocess.Popen[bytes]] = {}
        auth = f"requirepass {password}\nmasterauth {password}" if password else ""
        self.master_port = self._server("master", auth)
        self.replica_port = self._server(
            "replica", f"replicaof 127.0.0.1 {self.master_port}\n{auth}"
        )
        self.sentinel_ports: list[int] = []
        self.sentinel_ports = [self._sentinel(i) for i in range(sentinels)]

    @property
    def sentinels_env(self) -> str:
        return ",".join(f"127.0.0.1:{port}" for port in self.sentinel_ports)

    def _spawn(self, port: int, name: str, argv: list[str]) -> None:
        log = open(self.base / f"{name}.log", "ab")  # noqa: SIM115 (closed after Popen)
        self.processes[port] = subprocess.Popen(
            argv, cwd=self.base, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
        )
        log.close()

    def _server(self, name: str, extra: str = "") -> int:
        """A redis-server with its config file; ``extra`` is one more config line."""
        port = free_port()
        conf = self.base / f"{name}.conf"
        conf.write_text(
            f'port {port}\nbind 127.0.0.1\nprotected-mode no\nsave ""\nappendonly no\n'
            f"dir {self.base}\ndbfilename {name}.rdb\n" + f"{extra}\n"
        )
        self._spawn(port, name, [self.server, str(conf)])
        return port

    def _sentinel(self, index: int) -> int:
        port = free_port()
        conf = self.base / f"sentinel-{index}.conf"
        conf.write_text(
            f"port {port}\nbind 127.0.0.1\nprotected-mode no\ndir {self.base}\n"
            f"sentinel monitor {self.master_name} 127.0.0.1 {self.master_port} 1\n"
            f"sentinel down-after-milliseconds {self.master_name} 1000\n"
            f"sentinel failover-timeout {self.master_name} 4000\n"
            f"sentinel parallel-syncs {self.master_name} 1\n"
            + (f"sentinel auth-pass {self.master_name} {self.password}\n" if self.password else "")
            + (f"requirepass {self.sentinel_password}\n" if self.sentinel_password else "")
        )
        self._spawn(port, f"sentinel-{index}", [self.server, str(conf), "--sentinel"])
        return port

    def client(self, port: int) -> redis.Redis:
        password = self.sentinel_password if port in self.sentinel_ports else self.password
        return redis.Redis(
            host="127.0.0.1",
            port=port,
            password=password,
            socket_timeout=2,
            decode_responses=True,
        )

    def wait_ready(self, timeout: float = 30) -> None:
        """Until the replica is in sync and every sentinel knows it and the others."""
        deadline = time.monotonic() + timeout
        others = len(self.sentinel_ports) - 1
        while time.monotonic() < deadline:
            try:
                link = self.client(self.replica_port).info("replication").get("master_link_status")
                ready = link == "up" and all(
                    len(self.client(p).sentinel_slaves(self.master_name)) == 1
                    and len(self.client(p).sentinel_sentinels(self.master_name)) == others
                    for p in self.sentinel_ports
                )
                if ready:
                    return
            except redis.RedisError:
                pass
            time.sleep(0.2)
        raise AssertionError(f"sentinel cluster not ready; see logs in {self.base}")

    def master_port_now(self) -> int:
        host, port = self.client(self.sentinel_ports[0]).sentinel_get_master_addr_by_name(
            self.master_name
        )
        return int(port)

    def kill(self, port: int) -> None:
        process = self.processes[port]
        process.send_signal(signal.SIGKILL)
        process.wait(10)

    def wait_master(self, port: int, timeout: float = 30) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                if all(
                    int(self.client(p).sentinel_get_master_addr_by_name(self.master_name)[1])
                    == port
                    for p in self.sentinel_ports
                ):
                    role = self.client(port).info("replication")["role"]
                    if role == "master":
                        return
            except redis.RedisError:
                pass
            time.sleep(0.2)
        raise AssertionError(f"no failover to port {port}; see logs in {self.base}")

    def close(self) -> None:
        for process in self.processes.values():
            if process.poll() is None:
                process.send_signal(signal.SIGKILL)
                process.wait(10)
