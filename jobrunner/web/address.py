"""Where the dashboard listens: `--http HOST:PORT` read, and what counts as this machine.

Kept apart from the HTTP stack, so that `jobrunner demo` can read an address without it.
"""

from __future__ import annotations

import ipaddress

from jobrunner.errors import BadValueError


def parse_address(address: str) -> tuple[str, int]:
    """`HOST:PORT` (`[::1]:PORT` for IPv6), or a bare `PORT` on loopback -> (host, port);
    ConfigError saying what is right."""
    if address.isdigit():
        address = f"127.0.0.1:{address}"  # this machine only, unless an address is given
    host, colon, port = address.rpartition(":")
    if not colon or not host or not port.isdigit() or int(port) > 65535:
        raise BadValueError(
            f"--http {address!r}: write HOST:PORT or PORT, for example 127.0.0.1:8080 or 8080"
            " (this machine only; 0.0.0.0:8080 listens on every interface and needs"
            " --http-token)"
        )
    return host.strip("[]"), int(port)


def url_of(host: str, port: int) -> str:
    """`http://HOST:PORT/`, an IPv6 host in brackets."""
    shown = f"[{host}]" if ":" in host else host
    return f"http://{shown}:{port}/"


def is_loopback(host: str) -> bool:
    """`127.0.0.1`, `::1`, `localhost`: only this machine can connect."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False
