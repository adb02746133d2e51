"""Binding a server's listening socket before uvicorn runs, so that a taken address is one line
naming the setting (exit 2), not uvicorn's log line and exit 3 (asg-gateway, asg-challenge)."""

from __future__ import annotations

import socket


def listen(host: str, port: int) -> socket.socket:
    """A bound socket on host:port, with uvicorn's own bind options; OSError when it cannot be."""
    sock = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host.strip("[]"), port))
    except BaseException:
        sock.close()
        raise
    sock.set_inheritable(True)
    return sock
