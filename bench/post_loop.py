"""The webhook phases' baseline: a plain loop of ``requests`` posts, one Session per thread.

``python -m bench.post_loop URL FILE --threads T`` posts every request of FILE
(JSON lines: {"body": ..., "headers": {...}}) to URL from T threads, each with
its own keep-alive Session, and prints one JSON line: when it started and ended
(wall clock) and how many answered 2xx. With ``--start-at`` the processes
start together. The harness runs one per worker process
of eventhub's, so both sides have the same processes and threads.
"""

import argparse
import json
import sys
import threading
import time

import requests


def post_all(url: str, requests_: list[dict], threads: int) -> dict:
    """Post ``requests_`` from ``threads`` threads; returns start, end and the 2xx count."""
    shares = [requests_[i::threads] for i in range(threads)]
    ok = [0] * threads

    def loop(index: int) -> None:
        session = requests.Session()
        for item in shares[index]:
            response = session.post(url, data=item["body"].encode(), headers=item["headers"], timeout=30)
            ok[index] += 200 <= response.status_code < 300

    workers = [threading.Thread(target=loop, args=(i,)) for i in range(threads)]
    started = time.time()
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    return {"started": started, "ended": time.time(), "ok": sum(ok), "count": len(requests_)}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.post_loop", description=__doc__.split("\n\n")[0])
    parser.add_argument("url")
    parser.add_argument("file")
    parser.add_argument("--threads", type=int, default=8)
    parser.add_argument("--start-at", type=float, default=0.0, help="wall-clock time to start (a barrier)")
    args = parser.parse_args(sys.argv[1:] if argv is None else argv)
    with open(args.file) as handle:
        items = [json.loads(line) for line in handle if line.strip()]
    time.sleep(max(args.start_at - time.time(), 0))
    print(json.dumps(post_all(args.url, items, args.threads)), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
