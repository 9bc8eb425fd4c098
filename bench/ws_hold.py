#!/usr/bin/env python3
"""Idle WebSocket connections for bench/memory.sh (standard library only).

  ws_hold.py app PORT                 a local app: answers every upgrade with 101 and then
                                      holds the connection, echoing whatever arrives
  ws_hold.py visitors PORT N [HOST]   opens N WebSocket upgrades to 127.0.0.1:PORT, prints
                                      "held K" (K of N got their 101), then holds them until
                                      stdin closes

Each process holds one socket per connection, so N visitors and the app need N descriptors
each (ulimit -n). The handshakes run a few hundred at a time so no accept queue overflows.
"""
import asyncio
import base64
import hashlib
import os
import sys

GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC11B2D"


async def read_head(reader):
    head = await reader.readuntil(b"\r\n\r\n")
    return head.decode("latin-1").split("\r\n")


async def app(port):
    async def serve(reader, writer):
        try:
            lines = await read_head(reader)
            key = ""
            for line in lines[1:]:
                name, _, value = line.partition(":")
                if name.strip().lower() == "sec-websocket-key":
                    key = value.strip()
            accept = base64.b64encode(hashlib.sha1(key.encode() + GUID).digest()).decode()
            writer.write(
                (
                    "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
                    f"Connection: Upgrade\r\nSec-WebSocket-Accept: {accept}\r\n\r\n"
                ).encode()
            )
            await writer.drain()
            while True:
                data = await reader.read(65536)
                if not data:
                    break
                writer.write(data)
                await writer.drain()
        except (OSError, asyncio.IncompleteReadError, asyncio.LimitOverrunError):
            pass
        finally:
            writer.close()

    server = await asyncio.start_server(serve, "127.0.0.1", port, backlog=4096)
    print("ready", flush=True)
    async with server:
        await server.serve_forever()


async def visitors(port, n, host):
    gate = asyncio.Semaphore(200)
    held = []

    async def one():
        async with gate:
            try:
                reader, writer = await asyncio.open_connection("127.0.0.1", port)
                key = base64.b64encode(os.urandom(16)).decode()
                writer.write(
                    (
                        f"GET /ws HTTP/1.1\r\nHost: {host}\r\nUpgrade: websocket\r\n"
                        f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\n"
                        "Sec-WebSocket-Version: 13\r\n\r\n"
                    ).encode()
                )
                await writer.drain()
                lines = await asyncio.wait_for(read_head(reader), 60)
                if " 101 " in lines[0] + " ":
                    held.append(writer)
                else:
                    writer.close()
            except (OSError, asyncio.TimeoutError, asyncio.IncompleteReadError):
                pass

    await asyncio.gather(*(one() for _ in range(n)))
    print(f"held {len(held)}", flush=True)
    # Hold until the caller closes our stdin.
    await asyncio.get_running_loop().run_in_executor(None, sys.stdin.read)
    for w in held:
        w.close()


def main():
    if len(sys.argv) >= 3 and sys.argv[1] == "app":
        asyncio.run(app(int(sys.argv[2])))
    elif len(sys.argv) >= 4 and sys.argv[1] == "visitors":
        host = sys.argv[4] if len(sys.argv) > 4 else "127.0.0.1"
        asyncio.run(visitors(int(sys.argv[2]), int(sys.argv[3]), host))
    else:
        sys.exit(__doc__)


if __name__ == "__main__":
    main()
