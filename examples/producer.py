#!/usr/bin/env python3
"""A producer of events for eventhub that knows nothing of eventhub: plain HTTP (urllib).

Posts one CloudEvent to eventhub's ingest API with an API token created in the admin:

    EVENTHUB_TOKEN=eh_... python examples/producer.py --url http://127.0.0.1:8000 \\
        --type order.paid --source /shop/python --data '{"order_id": 42}'

Structured mode by default (the whole event as application/cloudevents+json);
--binary sends the attributes as ce-* headers and the data as the body instead.
Prints eventhub's JSON answer; exits 0 when the event was accepted (new or duplicate).
"""

import argparse
import json
import os
import sys
import urllib.error
import urllib.request
import uuid
from datetime import UTC, datetime
from urllib.parse import quote


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", default="http://127.0.0.1:8000", help="eventhub's base URL.")
    parser.add_argument(
        "--token", default=os.environ.get("EVENTHUB_TOKEN"), help="API token (or EVENTHUB_TOKEN)."
    )
    parser.add_argument("--type", required=True, help="The event type, e.g. order.paid.")
    parser.add_argument("--source", default="/examples/producer", help="CloudEvents source of this producer.")
    parser.add_argument(
        "--id", default=None, help="CloudEvents id (default: a new UUID). Resending one is safe."
    )
    parser.add_argument("--subject", default=None)
    parser.add_argument("--data", default="null", help="The event's data as JSON.")
    parser.add_argument("--binary", action="store_true", help="Binary content mode (ce-* headers).")
    return parser.parse_args()


def build_request(args: argparse.Namespace) -> urllib.request.Request:
    attributes = {
        "specversion": "1.0",
        "id": args.id or str(uuid.uuid4()),
        "source": args.source,
        "type": args.type,
        "time": datetime.now(UTC).isoformat().replace("+00:00", "Z"),
    }
    if args.subject:
        attributes["subject"] = args.subject
    data = json.loads(args.data)
    headers = {"Authorization": f"Bearer {args.token}"}
    if args.binary:
        # Header values are percent-encoded so that any UTF-8 text survives HTTP.
        headers.update({f"ce-{k}": quote(v, safe="/:+") for k, v in attributes.items()})
        headers["Content-Type"] = "application/json"
        body = json.dumps(data).encode()
    else:
        headers["Content-Type"] = "application/cloudevents+json"
        body = json.dumps({**attributes, "datacontenttype": "application/json", "data": data}).encode()
    return urllib.request.Request(
        f"{args.url.rstrip('/')}/api/events", data=body, headers=headers, method="POST"
    )


def main() -> int:
    args = parse_args()
    if not args.token:
        print("Give the API token with --token or EVENTHUB_TOKEN.", file=sys.stderr)
        return 2
    try:
        with urllib.request.urlopen(build_request(args), timeout=30) as response:
            print(response.read().decode())
            return 0
    except urllib.error.HTTPError as error:
        # eventhub answers errors as RFC 9457 problem details (application/problem+json).
        print(f"HTTP {error.code}: {error.read().decode()}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
