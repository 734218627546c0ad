"""Publishing to RabbitMQ with publisher confirms collected per batch.

Dramatiq's ``RabbitmqBroker.enqueue`` waits for each message's confirm before it
sends the next, so N messages cost N round trips. This publisher sends a whole
batch and then waits once: RabbitMQ confirms many messages with one
``basic.ack`` (``multiple``), so a batch costs about one round trip.

One publisher per broker and process owns one connection and one channel in confirm mode (to the
first node of a cluster's list that answers; when that node goes away, the next publish connects to
the first that answers again), driven by pika's asynchronous ``SelectConnection`` in its own daemon
thread; callers in any thread hand it batches and wait for their outcome. Messages are persistent
and published ``mandatory``, so a message no queue takes (its queue was deleted) comes back
unconfirmed rather than lost.
"""

import contextlib
import logging
import os
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import dramatiq
import pika
from dramatiq.brokers.rabbitmq import RabbitmqBroker
from pika.adapters.select_connection import SelectConnection
from pika.spec import Basic

logger = logging.getLogger(__name__)
_publisher_lock = threading.Lock()

PERSISTENT = pika.BasicProperties(delivery_mode=pika.DeliveryMode.Persistent)
# Close the connection of a publisher nobody used for this long (brokers replaced in tests, idle web
# processes); the next publish opens a new one.
IDLE_CLOSE_SECONDS = 300.0


class PublishError(Exception):
    """The publisher could not reach RabbitMQ: nothing of the batch was sent."""


@dataclass(eq=False)
class _Batch:
    """Messages handed to the I/O thread, and what became of each."""

    messages: Sequence[tuple[str, bytes]]
    confirmed: list[bool] = field(default_factory=list)
    remaining: int = 0
    done: threading.Event = field(default_factory=threading.Event)

    def __post_init__(self) -> None:
        self.confirmed = [False] * len(self.messages)
        self.remaining = len(self.messages)
        if not self.remaining:
            self.done.set()

    def settle(self, index: int, ok: bool) -> None:
        self.confirmed[index] = ok
        self.remaining -= 1
        if self.remaining <= 0:
            self.done.set()


class ConfirmingPublisher:
    """Publishes batches on one confirm-mode channel; thread-safe; reconnects on the next use."""

    def __init__(
        self,
        parameters: pika.connection.Parameters | Sequence[pika.connection.Parameters],
        *,
        on_unroutable: Callable[[str], None] | None = None,
        connect_timeout: float = 10.0,
    ) -> None:
        # The nodes of a cluster, tried in order at each (re)connection.
        self.parameters = (
            [parameters] if isinstance(parameters, pika.connection.Parameters) else list(parameters)
        )
        self.on_unroutable = on_unroutable
        self.connect_timeout = connect_timeout
        self._lock = threading.Lock()
        self._pid = 0
        self._io: _Connection | None = None

    def publish(self, messages: Sequence[tuple[str, bytes]], *, timeout: float = 10.0) -> list[bool]:
        """Publish ``(queue, body)`` pairs; returns, per message, whether RabbitMQ confirmed it.

        A message not confirmed (nacked, returned as unroutable, or no answer within
        ``timeout`` seconds) is reported False: it may or may not have arrived, so the
        caller must be ready to send it again. Raises PublishError when RabbitMQ cannot
        be reached at all.
        """
        return self.wait(self.start(messages), timeout=timeout)

    def start(self, messages: Sequence[tuple[str, bytes]]) -> "_Batch":
        """Hand ``messages`` to the I/O thread and return at once; :meth:`wait` for their confirms.

        Several batches may be in flight: the next can be published while RabbitMQ
        still has to confirm the last (it confirms in order, often many at once).
        """
        batch = _Batch(messages)
        if messages:
            self._connection().submit(batch)
        return batch

    def wait(self, batch: "_Batch", *, timeout: float = 10.0) -> list[bool]:
        """Per message of a started batch, whether RabbitMQ confirmed it (False after ``timeout``)."""
        batch.done.wait(timeout)
        with self._lock:
            return list(batch.confirmed)

    def close(self) -> None:
        """Close the connection (in-flight batches report their messages unconfirmed)."""
        with self._lock:
            io, self._io = self._io, None
        if io is not None:
            io.stop()

    def _connection(self) -> "_Connection":
        with self._lock:
            # A forked child must not share its parent's socket: it opens its own.
            if self._io is None or not self._io.alive or self._pid != os.getpid():
                self._io = _Connection(self, self._lock)
                self._pid = os.getpid()
                self._io.start()
            io = self._io
        io.wait_ready(self.connect_timeout * len(self.parameters))  # each node may take its timeout
        return io


class _Connection:
    """The I/O thread: a SelectConnection, its confirm-mode channel and the unconfirmed messages."""

    def __init__(self, owner: ConfirmingPublisher, lock: threading.Lock) -> None:
        self.owner = owner
        self.lock = lock  # guards every _Batch: callers read them while this thread settles them
        self.ready = threading.Event()
        self.alive = True
        self.error: BaseException | None = None
        self.connection: SelectConnection | None = None
        self.channel = None
        self.next_tag = 0
        self.unconfirmed: dict[int, tuple[_Batch, int]] = {}  # delivery tag -> message, in tag order
        self.returned: set[int] = set()
        self.inbox: set[_Batch] = set()  # handed over, not yet published
        self.idle_timer = None
        self.thread = threading.Thread(target=self._run, name="eventhub-publisher", daemon=True)

    def start(self) -> None:
        self.thread.start()

    def wait_ready(self, timeout: float) -> None:
        if not self.ready.wait(timeout) or self.channel is None:
            self.stop()
            raise PublishError(f"Could not open a confirm channel to RabbitMQ: {self.error or 'timed out'}")

    def submit(self, batch: _Batch) -> None:
        with self.lock:
            if not self.alive:
                raise PublishError(f"The publisher connection is closed: {self.error}")
            self.inbox.add(batch)
        try:
            self.connection.ioloop.add_callback_threadsafe(lambda: self._publish(batch))
        except Exception:  # noqa: BLE001 - the loop stopped meanwhile; its exit fails the batch
            logger.debug("publisher loop stopped before a batch was handed over", exc_info=True)

    def stop(self) -> None:
        self.alive = False
        if self.connection is not None:
            with contextlib.suppress(Exception):  # the loop already stopped
                self.connection.ioloop.add_callback_threadsafe(self._close)

    # Everything below runs in the I/O thread.

    def _run(self) -> None:
        try:
            for parameters in self.owner.parameters:
                self._run_with(parameters)
                if self.ready.is_set() or not self.alive:
                    break  # it opened (and has closed since), or the owner stopped it: no failover
                logger.warning(
                    "eventhub publisher: %s:%s did not answer: %s",
                    parameters.host,
                    parameters.port,
                    self.error,
                )
        finally:
            self.channel = None
            self._fail_unconfirmed()
            self.ready.set()

    def _run_with(self, parameters: pika.connection.Parameters) -> None:
        """Connect to one node and run the I/O loop until the connection fails or closes."""
        try:
            self.connection = SelectConnection(
                parameters,
                on_open_callback=self._on_open,
                on_open_error_callback=self._on_open_error,
                on_close_callback=self._on_closed,
            )
            self.connection.ioloop.start()
        except Exception as exc:  # noqa: BLE001 - reported to the caller waiting for ready
            self.error = exc
            logger.warning("eventhub publisher connection failed: %s", exc)

    def _on_open(self, connection: SelectConnection) -> None:
        connection.channel(on_open_callback=self._on_channel_open)

    def _on_channel_open(self, channel) -> None:
        channel.add_on_close_callback(self._on_channel_closed)
        channel.add_on_return_callback(self._on_return)
        channel.confirm_delivery(
            ack_nack_callback=self._on_confirm, callback=lambda _: self._on_confirm_mode(channel)
        )

    def _on_confirm_mode(self, channel) -> None:
        self.channel = channel
        self._touch()
        self.ready.set()

    def _on_open_error(self, connection: SelectConnection, error: BaseException | str) -> None:
        self.error = error if isinstance(error, BaseException) else PublishError(str(error))
        connection.ioloop.stop()

    def _on_closed(self, connection: SelectConnection, reason: BaseException) -> None:
        self.error = self.error or reason
        connection.ioloop.stop()

    def _on_channel_closed(self, channel, reason: BaseException) -> None:
        logger.warning("eventhub publisher channel closed: %s", reason)
        self.channel = None
        self._close()

    def _close(self) -> None:
        self.alive = False
        self.channel = None
        if self.connection is not None and not (self.connection.is_closing or self.connection.is_closed):
            self.connection.close()
        elif self.connection is not None:
            self.connection.ioloop.stop()

    def _publish(self, batch: _Batch) -> None:
        channel = self.channel
        with self.lock:
            if batch not in self.inbox:
                return  # already failed by a closing connection
            self.inbox.discard(batch)
            if channel is None or not channel.is_open:
                for index in range(len(batch.messages)):
                    batch.settle(index, False)
                return
        self._touch()
        for index, (queue, body) in enumerate(batch.messages):
            self.next_tag += 1
            self.unconfirmed[self.next_tag] = (batch, index)
            properties = pika.BasicProperties(
                delivery_mode=PERSISTENT.delivery_mode, message_id=str(self.next_tag)
            )
            channel.basic_publish("", queue, body, properties=properties, mandatory=True)

    def _on_return(self, channel, method, properties, body) -> None:
        # RabbitMQ sends basic.return before the basic.ack of the same message.
        if properties.message_id and properties.message_id.isdigit():
            self.returned.add(int(properties.message_id))
        if self.owner.on_unroutable is not None:
            self.owner.on_unroutable(method.routing_key)

    def _on_confirm(self, frame) -> None:
        method = frame.method
        acked = isinstance(method, Basic.Ack)
        with self.lock:
            if method.multiple:
                while self.unconfirmed:
                    tag = next(iter(self.unconfirmed))
                    if tag > method.delivery_tag:
                        break
                    self._settle(tag, acked)
            elif method.delivery_tag in self.unconfirmed:
                self._settle(method.delivery_tag, acked)

    def _settle(self, tag: int, acked: bool) -> None:
        batch, index = self.unconfirmed.pop(tag)
        ok = acked and tag not in self.returned
        self.returned.discard(tag)
        batch.settle(index, ok)

    def _fail_unconfirmed(self) -> None:
        with self.lock:
            self.alive = False
            for batch, index in self.unconfirmed.values():
                batch.settle(index, False)
            self.unconfirmed.clear()
            for batch in self.inbox:
                for index in range(len(batch.messages)):
                    batch.settle(index, False)
            self.inbox.clear()

    def _touch(self) -> None:
        if self.idle_timer is not None:
            self.connection.ioloop.remove_timeout(self.idle_timer)
        self.idle_timer = self.connection.ioloop.call_later(IDLE_CLOSE_SECONDS, self._close)


def publisher_for(broker: "RabbitmqBroker") -> ConfirmingPublisher:
    """The batch-confirming publisher of ``broker`` in this process (created on first use)."""
    publisher = getattr(broker, "_eventhub_publisher", None)
    if publisher is None:
        with _publisher_lock:
            publisher = getattr(broker, "_eventhub_publisher", None)
            if publisher is None:
                publisher = ConfirmingPublisher(
                    broker.parameters, on_unroutable=lambda queue: broker.queues_pending.add(queue)
                )
                broker._eventhub_publisher = publisher
    return publisher


def close_publisher(broker: dramatiq.Broker) -> None:
    """Close ``broker``'s publisher, if it has one (the broker is being replaced)."""
    publisher = getattr(broker, "_eventhub_publisher", None)
    if publisher is not None:
        publisher.close()
