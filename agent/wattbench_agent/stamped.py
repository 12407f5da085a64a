"""Sockets whose reads carry the time their bytes reached this host: Linux's kernel receive timestamp
(SO_TIMESTAMPNS, the time the last packet of a read was queued on the socket), converted to
time.monotonic(). A token's arrival is then when it arrived, not when a busy loop got round to reading it,
so neither the client's own load nor a burst of streams answering at once (an engine sends every running
request's token at the same step) adds its delay to TTFT and inter-token gaps.

Where the kernel gives no stamp (not Linux, a TLS connection, which goes through asyncio's own transport) a
read is stamped with time.monotonic() when read, and `Feeder` counts which kind each read had."""

import asyncio
import math
import os
import select
import selectors
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


# selectors.EpollSelector exists only where select has epoll; elsewhere DirectSelector is never made
# (available() says so) and this base only lets the class be defined.
_EpollSelector = getattr(selectors, "EpollSelector", selectors.DefaultSelector)


class DirectSelector(_EpollSelector):  # type: ignore[misc,valid-type]
    """asyncio's epoll selector (selectors.EpollSelector: register, modify, the keys) that also serves
    `direct` file descriptors: select() calls their handler itself with epoll's event bits, where asyncio
    would wrap each ready socket's callback in a Handle and run it from its ready queue. On one read of a
    stream that step cost more than the read itself (19.5 µs of user time per read through add_reader, 7.8 µs
    through epoll alone, bench/loadgen.py's machine). A handler that raises is passed to `on_error` (the
    loop's exception handler) and the others still run, as asyncio's own callbacks would. Linux only
    (`available()`)."""

    def __init__(self) -> None:
        super().__init__()
        self._direct = {}  # type: Dict[int, Callable[[int], None]]
        self.on_error = None  # type: Optional[Callable[[BaseException], None]]
        # epoll counts whole milliseconds, so a timer is served up to 1 ms late (0.5 ms on average). True:
        # wait the whole milliseconds in epoll and the rest in a sleep, for a schedule that must hold to
        # the tenth of a millisecond (a request-rate point's arrivals); a socket ready meanwhile is read
        # after the sleep, so only where its stamp is the kernel's.
        self.fine_timeouts = False
        self._sleep = time.sleep

    @staticmethod
    def available() -> bool:
        return hasattr(selectors, "EpollSelector")

    def register(self, fileobj: Any, events: int, data: Any = None) -> selectors.SelectorKey:
        fd = fileobj if isinstance(fileobj, int) else fileobj.fileno()
        if fd in self._direct:
            raise KeyError("%r (FD %d) is already registered" % (fileobj, fd))
        return super().register(fileobj, events, data)

    def add_direct(self, fd: int, handler: Callable[[int], None]) -> None:
        if fd in self._direct or fd in self._fd_to_key:
            raise KeyError("FD %d is already registered" % fd)
        self._selector.register(fd, select.EPOLLIN)
        self._direct[fd] = handler

    def modify_direct(self, fd: int, writing: bool) -> None:
        self._selector.modify(fd, select.EPOLLIN | (select.EPOLLOUT if writing else 0))

    def remove_direct(self, fd: int) -> None:
        """Before the fd is closed: a number the kernel reuses must not reach the old handler."""
        if self._direct.pop(fd, None) is not None:
            try:
                self._selector.unregister(fd)
            except OSError:
                pass

    def select(self, timeout: Optional[float] = None) -> List[Tuple[selectors.SelectorKey, int]]:
        if timeout is None:
            timeout = -1
        elif timeout <= 0:
            timeout = 0
        elif not self.fine_timeouts:
            timeout = math.ceil(timeout * 1e3) * 1e-3  # epoll counts milliseconds: wait at least `timeout`
        elif timeout < 1e-3:
            self._sleep(timeout)
            timeout = 0
        else:
            # the whole milliseconds (Python rounds a poll's timeout up to the next one: half of one less
            # is exactly them); the loop then asks again for the rest
            timeout = (math.floor(timeout * 1e3) - 0.5) * 1e-3
        ready = []  # type: List[Tuple[selectors.SelectorKey, int]]
        try:
            fd_events = self._selector.poll(timeout, max(len(self._fd_to_key) + len(self._direct), 1))
        except InterruptedError:
            return ready
        direct = self._direct
        keys = self._fd_to_key
        for fd, event in fd_events:
            handler = direct.get(fd)
            if handler is not None:
                try:
                    handler(event)
                except (SystemExit, KeyboardInterrupt):
                    raise
                except BaseException as e:  # noqa: B036 - as asyncio's Handle: report, go on with the rest
                    if self.on_error is None:
                        raise
                    self.on_error(e)
                continue
            key = keys.get(fd)
            if key is not None:
                events = ((selectors.EVENT_WRITE if event & ~select.EPOLLIN else 0)
                          | (selectors.EVENT_READ if event & ~select.EPOLLOUT else 0))
                ready.append((key, events & key.events))
        return ready

    def close(self) -> None:
        self._direct.clear()
        super().close()


def new_loop() -> asyncio.AbstractEventLoop:
    """The load generator's loop: on a DirectSelector where the platform has epoll, else asyncio's own."""
    if not DirectSelector.available():
        return asyncio.new_event_loop()
    selector = DirectSelector()
    loop = asyncio.SelectorEventLoop(selector)

    def report(error: BaseException) -> None:
        loop.call_exception_handler({"message": "a socket's read handler failed", "exception": error})

    selector.on_error = report
    loop.wattbench_direct = selector  # type: ignore[attr-defined]
    return loop


def direct_selector(loop: asyncio.AbstractEventLoop) -> Optional[DirectSelector]:
    """The DirectSelector of a loop from new_loop(), else None (the loop's sockets then use add_reader)."""
    return getattr(loop, "wattbench_direct", None)


def run_loop(coro: Any) -> Any:
    """asyncio.run(coro) on new_loop() (asyncio.run takes no loop before 3.12)."""
    loop = new_loop()
    try:
        asyncio.set_event_loop(loop)
        return loop.run_until_complete(coro)
    finally:
        try:
            tasks = [task for task in asyncio.all_tasks(loop) if not task.done()]
            for task in tasks:
                task.cancel()
            if tasks:
                loop.run_until_complete(asyncio.gather(*tasks, return_exceptions=True))
            loop.run_until_complete(loop.shutdown_asyncgens())
        finally:
            asyncio.set_event_loop(None)
            loop.close()


class StampedTransport(asyncio.Transport):
    """A plain TCP connection read with recvmsg_into, so each read comes with its kernel stamp, and handed
    to its protocol as `data_received_at(data, t)`. The protocol's `get_buffer` gives where reads land (a
    buffer shared by every connection on the loop: the protocol copies a read out before anything else
    runs). Writes go out at once, the rest when the socket takes it; close and abort end the connection
    now (nothing of ours is left to send once a response is over), `connection_lost` coming soon after."""

    def __init__(self, loop: asyncio.AbstractEventLoop, sock: socket.socket, protocol: Any, bridge: ClockBridge,
                 counts: ReadCounts, direct: Optional[DirectSelector] = None) -> None:
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
        self._direct = direct
        protocol.connection_made(self)
        if direct is not None:
            direct.add_direct(self._fd, self._on_events)
        else:
            loop.add_reader(self._fd, self._read_ready)

    def is_closing(self) -> bool:
        return self._closing

    def _on_events(self, event: int) -> None:
        """epoll's bits for this socket, from a DirectSelector: EPOLLOUT alone is room to write; anything
        else (data, the peer's close, an error) is a read, which reports what it finds."""
        if event & ~select.EPOLLIN and self._pending:
            self._write_ready()
        if event & ~select.EPOLLOUT and not self._closing:
            self._read_ready()

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
            self._want_writes(True)
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
            self._want_writes(False)

    def _want_writes(self, wanted: bool) -> None:
        if self._direct is not None:
            self._direct.modify_direct(self._fd, wanted)
        elif wanted:
            self._loop.add_writer(self._fd, self._write_ready)
        else:
            self._loop.remove_writer(self._fd)

    def close(self) -> None:
        self._end(None)

    def abort(self) -> None:
        self._end(None)

    def _end(self, error: Optional[BaseException]) -> None:
        if self._closing:
            return
        self._closing = True
        if self._direct is not None:
            self._direct.remove_direct(self._fd)
        else:
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
        return StampedTransport(loop, sock, protocol, bridge, counts, direct_selector(loop)), protocol
    raise last if last is not None else OSError("cannot connect to %s:%d" % (host, port))


def kernel_stamps_possible() -> bool:
    return _KERNEL_STAMPS and ANCILLARY_BYTES > 0
