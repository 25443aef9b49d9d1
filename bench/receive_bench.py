"""The collector's receive loop: what one datagram costs it, with and without the rate limit.

    python bench/receive_bench.py              # 15 rounds of 5,000 datagrams each way
    python bench/receive_bench.py --quick      # 3 rounds, to check it runs
    python bench/receive_bench.py --compare-with /path/to/other/checkout   # A/B, interleaved

Each round fills a real loopback UDP socket with datagrams first, then starts the collector's
own ``Receiver`` on it and times how long it takes to hand them all on (the hand-over is a
list append, so the figure is the loop's own cost: reading, rate limiting, counting, and the
once-a-second read of the kernel's drop counter). It also times that drop-counter read
(``socket_drops``) on its own. ``--compare-with DIR`` loads the receive loop of another
checkout (``DIR/telemetry_sdk/collector/_receiver.py``, with this checkout's other modules)
and runs it in the same process, round for round with this one.
"""

from __future__ import annotations

import argparse
import importlib.util
import socket
import sys
import threading
import time

from _common import fmt_us, machine_line, median, print_table

from telemetry_sdk.collector import _receiver
from telemetry_sdk.collector._metrics import Metrics
from telemetry_sdk.collector._ratelimit import Limit, RateLimiter
from telemetry_sdk.collector._socketdrops import socket_drops

DATAGRAM = b"1" + b'{"correlator": "' + b"0" * 36 + b'", "product": "p"}' + b" " * 200


def other_receiver(checkout: str) -> type[_receiver.Receiver]:
    """``Receiver`` from another checkout's ``_receiver.py``."""
    path = f"{checkout}/telemetry_sdk/collector/_receiver.py"
    spec = importlib.util.spec_from_file_location("telemetry_sdk.collector._receiver_other", path)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.Receiver  # type: ignore[no-any-return]


def one_round(
    count: int, *, limited: bool, receiver_class: type[_receiver.Receiver] = _receiver.Receiver
) -> float:
    """Seconds per datagram for the receive loop to take ``count`` queued datagrams."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 16 << 20)
    sock.bind(("127.0.0.1", 0))
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sender:
        sender.connect(sock.getsockname())
        for _ in range(count):
            sender.send(DATAGRAM)
    done = threading.Event()
    got = [0]
    finished = [0.0]

    def deliver(datagrams: list[bytes]) -> bool:
        got[0] += len(datagrams)
        if got[0] >= count:
            finished[0] = time.perf_counter()
            done.set()
        return True

    # Limited: a bucket so large that every datagram passes, so the cost is the check's.
    big = Limit(1e12, 10**9)
    limiter = RateLimiter(address=big, prefix=big, total=big) if limited else RateLimiter()
    receiver = receiver_class(sock, limiter, Metrics(), deliver)
    began = time.perf_counter()
    receiver.start()
    if not done.wait(30):
        msg = f"only {got[0]} of {count} datagrams arrived (kernel drops: {socket_drops(sock)})"
        raise RuntimeError(msg)
    receiver.stop()
    sock.close()
    return (finished[0] - began) / count


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=15)
    parser.add_argument("--count", type=int, default=5000, help="datagrams per round")
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--compare-with", metavar="DIR", help="another checkout's receive loop")
    args = parser.parse_args(argv)
    if args.quick:
        args.rounds = 3
    print(machine_line())
    receivers = {"": _receiver.Receiver}
    if args.compare_with:
        receivers = {
            "this checkout, ": _receiver.Receiver,
            f"{args.compare_with}, ": other_receiver(args.compare_with),
        }
    results: dict[str, list[float]] = {}
    for _ in range(args.rounds):  # interleaved, so all see the same machine
        for label, receiver_class in receivers.items():
            for limited in (False, True):
                name = label + ("rate limit on" if limited else "no rate limit (--rate 0)")
                seconds = one_round(args.count, limited=limited, receiver_class=receiver_class)
                results.setdefault(name, []).append(seconds)
    probe = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    probe.bind(("127.0.0.1", 0))
    reads = []
    for _ in range(200):
        started = time.perf_counter()
        socket_drops(probe)
        reads.append(time.perf_counter() - started)
    probe.close()
    rows = [
        [name, len(values), fmt_us(median(values)), f"{1 / median(values):,.0f}/s"]
        for name, values in results.items()
    ]
    rows.append(["socket_drops() (once a second)", len(reads), fmt_us(median(reads)), "-"])
    print_table(
        f"Receive loop, {args.count:,} queued datagrams per round (medians)",
        ["what", "rounds", "per datagram", "datagrams/s on one core"],
        rows,
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
