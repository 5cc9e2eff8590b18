"""Network fakes shared by the fetch tests: a connection spy that proves a blocked address
was never connected to (and refuses anything but loopback, so no test leaves the machine)."""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable

import httpcore


class SpyBackend(httpcore.AsyncNetworkBackend):
    """Records every TCP connection actually attempted, then makes it on loopback only."""

    def __init__(self) -> None:
        self.connects: list[tuple[str, int]] = []
        self._inner = httpcore.AnyIOBackend()

    async def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Iterable[httpcore.SOCKET_OPTION] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        self.connects.append((host, port))
        if not ipaddress.ip_address(host).is_loopback:
            raise AssertionError(f"test tried to connect to {host}")
        return await self._inner.connect_tcp(
            host, port, timeout=timeout, local_address=local_address, socket_options=socket_options
        )

    async def sleep(self, seconds: float) -> None:
        await self._inner.sleep(seconds)
