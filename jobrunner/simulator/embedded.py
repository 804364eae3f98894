"""`python -m jobrunner.simulator.embedded HOST PORT`: the amqtt broker, as a child process.

Started and stopped by `jobrunner.simulator.broker`; runs until it is terminated.
"""

from __future__ import annotations

import asyncio
import logging
import signal
import sys
import warnings


async def serve(host: str, port: int) -> None:
    with warnings.catch_warnings():
        # amqtt's plugins import passlib, which imports modules that Python deprecates.
        warnings.simplefilter("ignore", DeprecationWarning)
        from amqtt.broker import Broker

        broker = Broker(
            {
                "listeners": {"default": {"type": "tcp", "bind": f"{host}:{port}"}},
                "sys_interval": 0,
                "auth": {"allow-anonymous": True, "plugins": ["auth_anonymous"]},
                "topic-check": {"enabled": False},
            }
        )
    await broker.start()
    stopped = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stopped.set)
    await stopped.wait()


def main() -> None:
    logging.basicConfig(level=logging.CRITICAL)
    host, port = sys.argv[1], int(sys.argv[2])
    asyncio.run(serve(host, port))


if __name__ == "__main__":
    main()
