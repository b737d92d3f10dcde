"""A TCP relay on loopback that forwards bytes both ways and does nothing else: the floor of any process in the path.

    python benchmarks/tcp_relay.py HOST PORT

Listens on a free loopback port (it prints `relaying on http://127.0.0.1:N`) and relays every connection to
HOST:PORT on uvloop (asyncio without it). `benchmarks/gateway_stream.py --relay` puts it in front of the same
upstream as the gateways, so what a process costs the model merely by waking for each chunk is measured beside what
the gateway costs.
"""

from __future__ import annotations

import argparse
import asyncio
import sys


async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        while data := await reader.read(1 << 16):
            writer.write(data)
    finally:
        writer.close()


async def _serve(host: str, port: int) -> None:
    async def relay(client_r: asyncio.StreamReader, client_w: asyncio.StreamWriter) -> None:
        upstream_r, upstream_w = await asyncio.open_connection(host, port)
        await asyncio.gather(_pipe(client_r, upstream_w), _pipe(upstream_r, client_w), return_exceptions=True)

    server = await asyncio.start_server(relay, "127.0.0.1", 0)
    print(f"relaying on http://127.0.0.1:{server.sockets[0].getsockname()[1]}", file=sys.stderr, flush=True)
    await server.serve_forever()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("host")
    parser.add_argument("port", type=int)
    args = parser.parse_args()
    host, port = args.host, args.port
    try:
        import uvloop

        uvloop.run(_serve(host, port))
    except ImportError:
        asyncio.run(_serve(host, port))


if __name__ == "__main__":
    main()
