"""A TCP relay in front of a server that a test can make misbehave: what a network blip or a failover
looks like to the clients of Redis (or anything else spoken over TCP; TLS passes through untouched).

Run as its own process, so relaying never competes with the test's load threads for the GIL::

    python -m tests.support.fault_proxy --listen 127.0.0.1:P --target 127.0.0.1:Q --control 127.0.0.1:C

The control port takes one command a line and answers ``ok`` once it is in force:

* ``pass``: relay (the start state); connections made from now on reach the server.
* ``reset``: every open connection is torn down with a TCP reset (``SO_LINGER`` 0), and every new
  one is accepted and reset at once, as a load balancer or a dead peer does.
* ``refuse``: every open connection is reset and nothing listens any more: new connections are
  refused, as when the server's address has no process behind it.

:class:`FaultProxy` starts it and sends the commands.
"""

from __future__ import annotations

import argparse
import asyncio
import socket
import struct
import subprocess
import sys
import time
from pathlib import Path

BUFFER = 64 * 1024


def _address(text: str) -> tuple[str, int]:
    host, _, port = text.rpartition(":")
    return host, int(port)


def _text(address: tuple[str, int]) -> str:
    return f"{address[0]}:{address[1]}"


def _reset(writer: asyncio.StreamWriter) -> None:
    sock = writer.get_extra_info("socket")
    if sock is not None:
        # Closing with a zero linger time sends RST instead of FIN.
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    writer.transport.abort()


class Relay:
    def __init__(self, listen: tuple[str, int], target: tuple[str, int]) -> None:
        self.listen, self.target = listen, target
        self.mode = "pass"
        self.server: asyncio.Server | None = None
        self.open: set[asyncio.StreamWriter] = set()

    async def start_listening(self) -> None:
        if self.server is None:
            self.server = await asyncio.start_server(self.accept, *self.listen, reuse_address=True)

    async def stop_listening(self) -> None:
        if self.server is not None:
            self.server.close()
            self.server = None

    def reset_all(self) -> None:
        for writer in list(self.open):
            _reset(writer)
        self.open.clear()

    async def accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if self.mode != "pass":
            _reset(writer)
            return
        try:
            up_reader, up_writer = await asyncio.open_connection(*self.target)
        except OSError:
            _reset(writer)
            return
        self.open.update((writer, up_writer))

        async def pipe(src: asyncio.StreamReader, dst: asyncio.StreamWriter) -> None:
            try:
                while data := await src.read(BUFFER):
                    dst.write(data)
                    await dst.drain()
            except (OSError, asyncio.IncompleteReadError):
                pass
            finally:
                if dst in self.open:
                    self.open.discard(dst)
                    dst.close()

        await asyncio.gather(pipe(reader, up_writer), pipe(up_reader, writer))

    async def command(self, line: str) -> str:
        if line == "pass":
            self.mode = "pass"
            await self.start_listening()
        elif line == "reset":
            self.mode = "reset"
            self.reset_all()
        elif line == "refuse":
            self.mode = "refuse"
            await self.stop_listening()
            self.reset_all()
        else:
            return f"unknown command {line!r}"
        return "ok"

    async def control(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while line := (await reader.readline()).decode().strip():
            writer.write((await self.command(line) + "\n").encode())
            await writer.drain()
        writer.close()


async def serve(listen: tuple[str, int], target: tuple[str, int], control: tuple[str, int]) -> None:
    relay = Relay(listen, target)
    await relay.start_listening()
    server = await asyncio.start_server(relay.control, *control)
    print("ready", flush=True)
    async with server:
        await server.serve_forever()


class FaultProxy:
    """The relay as a child process of the test, and its control connection."""

    def __init__(self, listen: tuple[str, int], target: tuple[str, int], control: tuple[str, int], log: Path):
        self.listen, self.target, self.control = listen, target, control
        self._log = log
        self._process: subprocess.Popen[bytes] | None = None
        self._sock: socket.socket | None = None

    def start(self) -> FaultProxy:
        argv = [
            sys.executable, "-m", "tests.support.fault_proxy",
            "--listen", _text(self.listen),
            "--target", _text(self.target),
            "--control", _text(self.control),
        ]  # fmt: skip
        with self._log.open("wb") as log:
            self._process = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=log)
        assert self._process.stdout is not None
        if self._process.stdout.readline().strip() != b"ready":
            raise RuntimeError(f"the fault proxy did not start; see {self._log}")
        deadline = time.monotonic() + 10
        while self._sock is None:
            try:
                self._sock = socket.create_connection(self.control, timeout=10)
            except OSError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.05)
        return self

    def set(self, mode: str) -> None:
        assert self._sock is not None
        self._sock.sendall(mode.encode() + b"\n")
        answer = b""
        while not answer.endswith(b"\n"):
            chunk = self._sock.recv(256)
            if not chunk:
                raise RuntimeError("the fault proxy closed its control connection")
            answer += chunk
        if answer.strip() != b"ok":
            raise RuntimeError(answer.decode().strip())

    def stop(self) -> None:
        if self._sock is not None:
            self._sock.close()
            self._sock = None
        if self._process is not None and self._process.poll() is None:
            self._process.terminate()
            self._process.wait(timeout=10)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    for name in ("--listen", "--target", "--control"):
        parser.add_argument(name, type=_address, required=True)
    args = parser.parse_args()
    try:
        asyncio.run(serve(args.listen, args.target, args.control))
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    main()
