#!/usr/bin/env python3
"""A consumer of eventhub's events that knows nothing of eventhub: plain AMQP through pika.

eventhub publishes each event as CloudEvents JSON (structured mode) to a topic exchange,
with the event type as routing key. This consumer binds a queue of its own with a
pattern and prints every event as one JSON line on stdout, acking it after printing.

    python examples/consumer.py --exchange orders --binding-key 'order.*'

The same few steps work from any language with an AMQP 0-9-1 client (php-amqplib,
amqp091-go, amqplib for Node): declare the exchange (durable topic), declare a queue,
bind it, consume, ack.
"""

import argparse
import json
import os
import sys

import pika


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--url", default=os.environ.get("BROKER_URL", "amqp://guest:guest@127.0.0.1:5672/%2F")
    )
    parser.add_argument("--exchange", required=True, help="The exchange an eventhub AMQP route publishes to.")
    parser.add_argument("--binding-key", default="#", help="Topic pattern, e.g. 'order.*' or 'order.#'.")
    parser.add_argument("--queue", default="", help="Queue name (default: a server-named, exclusive queue).")
    parser.add_argument("--count", type=int, default=0, help="Exit after this many events (0: run forever).")
    parser.add_argument(
        "--timeout", type=float, default=0, help="Exit with status 1 after this many idle seconds."
    )
    return parser.parse_args()


def setup(channel, args: argparse.Namespace) -> str:
    """Declare the exchange (the same way eventhub does) and bind our own queue to it."""
    channel.exchange_declare(args.exchange, exchange_type="topic", durable=True)
    # A named queue is durable and survives restarts; an unnamed one lives with this process.
    declared = channel.queue_declare(args.queue, durable=bool(args.queue), exclusive=not args.queue)
    queue = declared.method.queue
    channel.queue_bind(queue, args.exchange, routing_key=args.binding_key)
    channel.basic_qos(prefetch_count=10)
    return queue


def main() -> int:
    args = parse_args()
    connection = pika.BlockingConnection(pika.URLParameters(args.url))
    channel = connection.channel()
    queue = setup(channel, args)
    print(
        f"ready: queue {queue} bound to {args.exchange} with {args.binding_key}", file=sys.stderr, flush=True
    )
    inactivity = args.timeout or None
    messages = channel.consume(queue, inactivity_timeout=inactivity)
    for received, (method, properties, body) in enumerate(messages, start=1):
        if method is None:
            print("no event arrived in time", file=sys.stderr, flush=True)
            return 1
        event = json.loads(body)
        print(
            json.dumps(
                {"routing_key": method.routing_key, "message_id": properties.message_id, "event": event}
            )
        )
        sys.stdout.flush()
        channel.basic_ack(method.delivery_tag)  # ack after handling: a crash before this redelivers
        if args.count and received >= args.count:
            break
    channel.cancel()
    connection.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
