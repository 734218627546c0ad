"""A small TCP proxy that a test controls, to cut a service (RabbitMQ) off and bring it back.

proxy = TcpProxy("127.0.0.1", 5672).start()   # listens on 127.0.0.1:proxy.port
proxy.cut()       # drops every open connection and refuses new ones
proxy.restore()   # accepts and forwards again
proxy.stop()
"""

import contextlib
import socket
import threading


class TcpProxy:
    """Forwards connections on a local port to ``host:port``, until cut."""

    def __init__(self, host: str, port: int) -> None:
        self.target = (host, port)
        self.port = 0
        self._listener: socket.socket | None = None
        self._open: set[socket.socket] = set()
        self._lock = threading.Lock()
        self._cut = threading.Event()
        self._stopped = threading.Event()
        self.connections = 0

    def start(self) -> "TcpProxy":
        """Listen on a free loopback port (``self.port``) and start forwarding."""
        listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind(("127.0.0.1", 0))
        listener.listen(64)
        self._listener, self.port = listener, listener.getsockname()[1]
        threading.Thread(target=self._accept, name="tcp-proxy-accept", daemon=True).start()
        return self

    def cut(self) -> None:
        """Drop every open connection; new ones are closed as soon as they are accepted."""
        self._cut.set()
        self._close_all()

    def restore(self) -> None:
        """Forward new connections again."""
        self._cut.clear()

    def stop(self) -> None:
        """Stop listening and drop everything."""
        self._stopped.set()
        if self._listener is not None:
            self._listener.close()
        self._close_all()

    def _accept(self) -> None:
        while not self._stopped.is_set():
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            if self._cut.is_set():
                client.close()
                continue
            try:
                upstream = socket.create_connection(self.target, timeout=5)
                upstream.settimeout(None)  # idle AMQP connections must stay open
            except OSError:
                client.close()
                continue
            self.connections += 1
            with self._lock:
                self._open.update((client, upstream))
            for source, sink in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pipe, args=(source, sink), daemon=True).start()

    def _pipe(self, source: socket.socket, sink: socket.socket) -> None:
        try:
            while chunk := source.recv(65536):
                sink.sendall(chunk)
        except OSError:
            pass
        finally:
            for sock in (source, sink):
                self._close(sock)

    def _close(self, sock: socket.socket) -> None:
        with self._lock:
            self._open.discard(sock)
        with contextlib.suppress(OSError):
            sock.shutdown(socket.SHUT_RDWR)
        sock.close()

    def _close_all(self) -> None:
        with self._lock:
            socks = list(self._open)
        for sock in socks:
            self._close(sock)
