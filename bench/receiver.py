"""A small, fast HTTP/1.1 receiver for the webhook phases: answers every POST with 200.

``python -m bench.receiver --delay 0.2`` answers each request after 200 ms (a
slow endpoint); ``--status 500`` answers every POST with that status (a broken
endpoint); ``--hang`` never answers a POST (an endpoint that hangs until the
client gives up; bench/isolation.py). Connections are kept alive, as a production receiver behind a
load balancer keeps them. It prints its port on the first line of stdout, and
``GET /count`` answers how many POSTs it has taken. asyncio, one process: its
own cost per request is far below a client's, so it is not what the phases measure.
"""

import argparse
import asyncio
import signal
import sys

OK = b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 2\r\n\r\nok"
HANG_SECONDS = 3600.0


def answer(status: int) -> bytes:
    """The whole response to a POST: ``status`` with a two-byte body."""
    if status == 200:
        return OK
    return b"HTTP/1.1 %d Error\r\nContent-Type: text/plain\r\nContent-Length: 2\r\n\r\nno" % status


class Receiver:
    """Counts POSTs; answers each after ``delay`` seconds with ``status`` (or never, with ``hang``)."""

    def __init__(self, delay: float, status: int = 200, hang: bool = False) -> None:
        self.delay = HANG_SECONDS if hang else delay
        self.response = answer(status)
        self.posts = 0

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                lines = head.decode("latin-1").lower().split("\r\n")
                length = next(
                    (int(line.split(":", 1)[1]) for line in lines if line.startswith("content-length:")), 0
                )
                if length:
                    await reader.readexactly(length)
                if lines[0].startswith("get /count"):
                    body = str(self.posts).encode()
                    writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n%s" % (len(body), body))
                    continue
                if self.delay:
                    await asyncio.sleep(self.delay)
                self.posts += 1
                writer.write(self.response)
                if "connection: close" in lines:
                    break
        except (asyncio.IncompleteReadError, ConnectionError, asyncio.LimitOverrunError):
            pass
        finally:
            writer.close()


async def serve(port: int, delay: float, status: int = 200, hang: bool = False) -> None:
    receiver = Receiver(delay, status, hang)
    server = await asyncio.start_server(receiver.handle, "127.0.0.1", port, backlog=1024)
    print(server.sockets[0].getsockname()[1], flush=True)
    stop = asyncio.Event()
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
    async with server:
        await stop.wait()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.receiver", description=__doc__.split("\n\n")[0])
    parser.add_argument("--port", type=int, default=0, help="port on 127.0.0.1 (0: any free one)")
    parser.add_argument("--delay", type=float, default=0.0, help="seconds before each answer")
    parser.add_argument("--status", type=int, default=200, help="HTTP status of every answer to a POST")
    parser.add_argument("--hang", action="store_true", help="never answer a POST")
    args = parser.parse_args(sys.argv[1:] if argv is None else argv)
    asyncio.run(serve(args.port, args.delay, args.status, args.hang))
    return 0


if __name__ == "__main__":
    sys.exit(main())
