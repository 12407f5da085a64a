"""Sockets whose reads carry the time their bytes reached this host: Linux's kernel receive timestamp
(SO_TIMESTAMPNS, the time the last packet of a read was queued on the socket), converted to
time.monotonic(). A token's arrival is then when it arrived, not when a busy loop got round to reading it,
so neither the client's own load nor a burst of streams answering at once (an engine sends every running
request's token at the same step) adds its delay to TTFT and inter-token gaps.

Where the kernel gives no stamp (not Linux, a TLS connection, which goes through asyncio's own transport) a
read is stamped with time.monotonic() when read, and `Feeder` counts which kind each read had."""

import asyncio
import os
import socket
import struct
import sys
import time
from typing import Any, Callable, Dict, List, Optional, Tuple

# SO_TIMESTAMPNS (SO_TIMESTAMPNS_OLD since Linux 5.1): 35 in asm-generic and on x86, arm, arm64, mips,
# powerpc, s390, riscv and alpha; sparc and parisc number it otherwise and are left to loop stamps. Python's
# socket module does not name it. Its control message has the same number and a native struct timespec.
SO_TIMESTAMPNS = 35
_KERNEL_STAMPS = sys.platform.startswith("linux") and not os.uname().machine.startswith(("sparc", "parisc"))
_TIMESPEC = struct.Struct("@ll")
ANCILLARY_BYTES = socket.CMSG_SPACE(_TIMESPEC.size) if hasattr(socket, "CMSG_SPACE") else 0

CLOCK_RESYNC_S = 1.0  # how often the realtime - monotonic offset is read again (NTP slews the realtime clock)


class ClockBridge:
    """Kernel stamps are CLOCK_REALTIME; the agent times on CLOCK_MONOTONIC. The offset between the two is
    read again every CLOCK_RESYNC_S, and a converted stamp is never later than now (a realtime step
    between two reads of the offset cannot put an arrival in the future)."""

    def __init__(self) -> None:
        self._offset = 0.0
        self._synced = -CLOCK_RESYNC_S

    def monotonic(self, payload: bytes) -> float:
        mono = time.monotonic()
        if mono - self._synced >= CLOCK_RESYNC_S:
            self._offset = time.time() - time.monotonic()
            self._synced = mono
        sec, nsec = _TIMESPEC.unpack_from(payload)
        t = (sec - self._offset) + nsec * 1e-9
        return t if t <= mono else mono


class ReadCounts:
    """How the reads of a loop were stamped."""

    def __init__(self) -> None:
        self.kernel = 0
        self.loop = 0

    def kind(self) -> Optional[str]:
        if self.kernel and self.loop:
            return "mixed"
        return "kernel" if self.kernel else "loop" if self.loop else None


class StampedTransport(asyncio.Transport):
    """A plain TCP connection read with recvmsg_into, so each read comes with its kernel stamp, and handed
    to its protocol as `data_received_at(data, t)`. The protocol's `get_buffer` gives where reads land (a
    buffer shared by every connection on the loop: the protocol copies a read out before anything else
    runs). Writes go out at once, the rest when the socket takes it; close and abort end the connection
    now (nothing of ours is left to send once a response is over), `connection_lost` coming soon after."""

    def __init__(self, loop: asyncio.AbstractEventLoop, sock: socket.socket, protocol: Any, bridge: ClockBridge,
                 counts: ReadCounts) -> None:
        super().__init__()
        self._loop = loop
        self._sock = sock
        self._fd = sock.fileno()
        self._protocol = protocol
        self._bridge = bridge
        self._counts = counts
        self._views = [protocol.get_buffer(-1)]  # the loop's one shared read buffer
        self._pending = bytearray()  # written, not yet taken by the socket
        self._closing = False
        protocol.connection_made(self)
        loop.add_reader(self._fd, self._read_ready)

    def is_closing(self) -> bool:
        return self._closing

    def _read_ready(self) -> None:
        views = self._views
        try:
            nbytes, ancillary, _, _ = self._sock.recvmsg_into(views, ANCILLARY_BYTES)
        except (BlockingIOError, InterruptedError):
            return
        except OSError as e:
            self._end(e)
            return
        if nbytes == 0:
            if not self._protocol.eof_received():
                self.close()
            return
        t = None
        for level, kind, payload in ancillary:
            if level == socket.SOL_SOCKET and kind == SO_TIMESTAMPNS and len(payload) >= _TIMESPEC.size:
                t = self._bridge.monotonic(payload)
        if t is None:
            self._counts.loop += 1
            t = time.monotonic()
        else:
            self._counts.kernel += 1
        self._protocol.data_received_at(bytes(views[0][:nbytes]), t)

    def write(self, data: Any) -> None:
        if self._closing or not data:
            return
        if not self._pending:
            try:
                sent = self._sock.send(data)
            except (BlockingIOError, InterruptedError):
                sent = 0
            except OSError as e:
                self._end(e)
                return
            if sent == len(data):
                return
            self._loop.add_writer(self._fd, self._write_ready)
            data = memoryview(data)[sent:]
        self._pending += data

    def _write_ready(self) -> None:
        try:
            sent = self._sock.send(self._pending)
        except (BlockingIOError, InterruptedError):
            return
        except OSError as e:
            self._end(e)
            return
        del self._pending[:sent]
        if not self._pending:
            self._loop.remove_writer(self._fd)

    def close(self) -> None:
        self._end(None)

    def abort(self) -> None:
        self._end(None)

    def _end(self, error: Optional[BaseException]) -> None:
        if self._closing:
            return
        self._closing = True
        self._loop.remove_reader(self._fd)
        if self._pending:
            self._loop.remove_writer(self._fd)
            self._pending = bytearray()
        self._sock.close()
        self._loop.call_soon(self._protocol.connection_lost, error)


class Resolver:
    """Addresses per (host, port), looked up once per loop: a numeric host at once, a name in the loop's
    executor (a blocking lookup), as asyncio's create_connection does, but not again for every connection."""

    def __init__(self) -> None:
        self._known = {}  # type: Dict[Tuple[str, int], List[Tuple[Any, ...]]]

    async def addresses(self, loop: asyncio.AbstractEventLoop, host: str, port: int) -> List[Tuple[Any, ...]]:
        key = (host, port)
        known = self._known.get(key)
        if known is None:
            try:
                known = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_NUMERICHOST)
            except socket.gaierror:
                known = await loop.getaddrinfo(host, port, type=socket.SOCK_STREAM)
            if not known:
                raise socket.gaierror("no address for %s" % host)
            self._known[key] = known
        return known


async def open_stamped(loop: asyncio.AbstractEventLoop, protocol_factory: Callable[[], Any], host: str, port: int,
                       resolver: Resolver, bridge: ClockBridge, counts: ReadCounts) -> Tuple[StampedTransport, Any]:
    """A TCP connection to host:port with kernel receive stamps asked for before it connects (a packet
    queued before the option is set has no stamp), trying each address in turn like create_connection."""
    last = None  # type: Optional[OSError]
    for family, kind, proto, _, address in await resolver.addresses(loop, host, port):
        sock = socket.socket(family, kind, proto)
        try:
            sock.setblocking(False)
            if _KERNEL_STAMPS:
                try:
                    sock.setsockopt(socket.SOL_SOCKET, SO_TIMESTAMPNS, 1)
                except OSError:
                    pass  # reads are then stamped on the loop, and counted so
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            await loop.sock_connect(sock, address)
        except OSError as e:
            sock.close()
            last = e
            continue
        except BaseException:
            sock.close()
            raise
        protocol = protocol_factory()
        return StampedTransport(loop, sock, protocol, bridge, counts), protocol
    raise last if last is not None else OSError("cannot connect to %s:%d" % (host, port))


def kernel_stamps_possible() -> bool:
    return _KERNEL_STAMPS and ANCILLARY_BYTES > 0
