"""Iris serving in the test's own process: launched on a free port, waited for, closed."""

from __future__ import annotations

import http.client
import time
from collections.abc import Iterator
from contextlib import contextmanager

from app.cli import free_port


def wait_for(port: int, tries: int = 200) -> None:
    """Until something answers HTTP on 127.0.0.1:port."""
    for _ in range(tries):
        try:
            http.client.HTTPConnection("127.0.0.1", port, timeout=1).request("HEAD", "/")
            return
        except OSError:
            time.sleep(0.1)


@contextmanager
def serving(services, start_port: int, key: str | None = None, close_services: bool = True) -> Iterator[int]:
    """launch(services) on the first free port from start_port; yields the port; closes it (and services)."""
    from app.ui import launch

    port = free_port("127.0.0.1", start_port)
    demo = launch(services, "127.0.0.1", port, open_browser=False, block=False, key=key)
    wait_for(port)
    try:
        yield port
    finally:
        demo.close()
        if close_services:
            services.close()
            if services.history is not None:
                services.history.close()
