"""A small user-space impairment relay for the namespace lab, for kernels without netem.

Run it in a middle namespace (``ip netns exec MID python -m tests.lab.relay ...``):
it receives UDP datagrams on ``--listen ADDRESS:PORT`` and sends each one, payload
unchanged, to ``--to ADDRESS:PORT`` after a fixed ``--delay-ms``, plus optionally

* ``--jitter-ms J``: an extra delay drawn uniformly from [0, J] per datagram with a
  seeded generator (``--seed``), so runs are repeatable. Jitter never reorders:
  a datagram is never released before the one that arrived ahead of it.
* ``--swap-every N``: deterministic reordering. Datagrams are paired in arrival
  order (1st+2nd, 3rd+4th, ...) and every Nth pair leaves in swapped order, so a
  stream of ``C`` datagrams has exactly ``C // (2 * N)`` swapped pairs. The first
  of a pair waits for its partner at most ``--hold-ms``; then it goes unswapped.

The TOS byte each datagram arrived with (``IP_RECVTOS``) is set on the way out
(``IP_TOS``), so DSCP seen by the receiver is the sender's marking, not the relay's.

Bounded: at most ``--max-queue`` datagrams wait (further ones are dropped and
counted), and the relay stops by itself after ``--time-limit-s``; SIGTERM or
SIGINT stop it earlier. On exit it prints one JSON line of counters on stdout.
It prints ``relay listening on ADDRESS:PORT`` on stderr once it is bound.
IPv4 only.
"""

from __future__ import annotations

import argparse
import heapq
import json
import random
import select
import signal
import socket
import sys
import time
from collections import Counter
from dataclasses import dataclass, field

IP_RECVTOS = getattr(socket, "IP_RECVTOS", 13)
MAX_DATAGRAM = 65535


@dataclass
class Stats:
    received: int = 0
    forwarded: int = 0
    swapped_pairs: int = 0
    unswapped_pairs: int = 0  # partner did not come within --hold-ms
    dropped_queue_full: int = 0
    send_errors: int = 0
    discarded_at_stop: int = 0
    tos_seen: Counter[int] = field(default_factory=Counter)

    def as_dict(self) -> dict[str, object]:
        return {
            "received": self.received,
            "forwarded": self.forwarded,
            "swapped_pairs": self.swapped_pairs,
            "unswapped_pairs": self.unswapped_pairs,
            "dropped_queue_full": self.dropped_queue_full,
            "send_errors": self.send_errors,
            "discarded_at_stop": self.discarded_at_stop,
            "tos_seen": {str(k): v for k, v in sorted(self.tos_seen.items())},
        }


def _host_port(text: str) -> tuple[str, int]:
    host, sep, port = text.rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise argparse.ArgumentTypeError(f"{text!r}: give IPV4ADDRESS:PORT")
    return host, int(port)


def extra_delays_ms(seed: int, jitter_ms: float, n: int) -> list[float]:
    """The extra delays the relay draws for its first ``n`` datagrams with ``--seed`` and ``--jitter-ms``."""
    rng = random.Random(seed)
    return [rng.uniform(0.0, jitter_ms) for _ in range(n)]


def _tos(ancillary: list[tuple[int, int, bytes]]) -> int:
    for level, kind, data in ancillary:
        if level == socket.IPPROTO_IP and kind == socket.IP_TOS and data:
            return data[0]
    return 0


class Relay:
    def __init__(
        self,
        listen: tuple[str, int],
        target: tuple[str, int],
        *,
        delay_ms: float,
        jitter_ms: float = 0.0,
        swap_every: int = 0,
        hold_ms: float = 1000.0,
        seed: int = 1,
        max_queue: int = 10_000,
    ) -> None:
        if delay_ms < 0 or jitter_ms < 0 or hold_ms < 0 or swap_every < 0 or max_queue < 1:
            raise ValueError("--delay-ms, --jitter-ms, --hold-ms and --swap-every must be >= 0, --max-queue >= 1")
        self.target = target
        self.delay_s = delay_ms / 1000.0
        self.jitter_ms = jitter_ms
        self.swap_every = swap_every
        self.hold_s = hold_ms / 1000.0
        self.rng = random.Random(seed)
        self.max_queue = max_queue
        self.stats = Stats()
        self.rx = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.tx = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)  # source address chosen by the route to --to
        self.rx.setsockopt(socket.IPPROTO_IP, IP_RECVTOS, 1)
        self.rx.bind(listen)
        self.rx.setblocking(False)
        self._tx_tos = -1
        self._queue: list[tuple[float, int, bytes, int]] = []  # (due, order, payload, tos)
        self._order = 0
        self._last_due = 0.0  # jitter keeps arrival order: nothing leaves before its predecessor
        self._held: tuple[float, float, bytes, int] | None = None  # first of a pair to swap: (due, expiry, ...)
        self._index = 0  # datagrams received, for the pairing

    def close(self) -> None:
        self.rx.close()
        self.tx.close()

    # ---------------------------------------------------------------- scheduling

    def _push(self, due: float, payload: bytes, tos: int) -> None:
        heapq.heappush(self._queue, (due, self._order, payload, tos))
        self._order += 1

    def _waiting(self) -> int:
        return len(self._queue) + (self._held is not None)

    def accept(self, payload: bytes, tos: int, now: float) -> None:
        """One datagram arrived at ``now`` (monotonic): schedule it."""
        self.stats.received += 1
        self.stats.tos_seen[tos >> 2] += 1
        if self._waiting() >= self.max_queue:
            self.stats.dropped_queue_full += 1
            return
        extra_ms = self.rng.uniform(0.0, self.jitter_ms) if self.jitter_ms else 0.0  # as extra_delays_ms()
        due = max(now + self.delay_s + extra_ms / 1000.0, self._last_due)
        self._last_due = due
        index, self._index = self._index, self._index + 1
        pair, second = divmod(index, 2)
        swap = self.swap_every > 0 and pair % self.swap_every == self.swap_every - 1
        if swap and not second:
            self._held = (due, now + self.hold_s, payload, tos)
            return
        if swap and second and self._held is not None:
            first_due, _, first_payload, first_tos = self._held
            self._held = None
            self._push(due, payload, tos)  # the second leaves first ...
            self._push(max(due, first_due), first_payload, first_tos)  # ... and the first right after it
            self.stats.swapped_pairs += 1
            return
        self._push(due, payload, tos)

    def expire_held(self, now: float) -> None:
        if self._held is not None and now >= self._held[1]:
            due, _, payload, tos = self._held
            self._held = None
            self._push(max(due, now), payload, tos)
            self.stats.unswapped_pairs += 1

    def next_wakeup(self) -> float | None:
        times = [self._queue[0][0]] if self._queue else []
        if self._held is not None:
            times.append(self._held[1])
        return min(times) if times else None

    # ---------------------------------------------------------------- I/O

    def send_due(self, now: float) -> None:
        while self._queue and self._queue[0][0] <= now:
            _, _, payload, tos = heapq.heappop(self._queue)
            if tos != self._tx_tos:
                self.tx.setsockopt(socket.IPPROTO_IP, socket.IP_TOS, tos)
                self._tx_tos = tos
            try:
                self.tx.sendto(payload, self.target)
                self.stats.forwarded += 1
            except OSError:
                self.stats.send_errors += 1

    def drain(self, batch: int = 64) -> None:
        """Take what has arrived, at most ``batch`` datagrams, so a flood cannot starve the sending."""
        ancillary_size = socket.CMSG_SPACE(4)
        for _ in range(batch):
            try:
                payload, ancillary, _, _ = self.rx.recvmsg(MAX_DATAGRAM, ancillary_size)
            except (BlockingIOError, InterruptedError):
                return
            self.accept(payload, _tos(ancillary), time.monotonic())

    def stop(self) -> None:
        self.stats.discarded_at_stop = len(self._queue) + (self._held is not None)
        self._queue.clear()
        self._held = None

    def run(self, time_limit_s: float, wake_fd: socket.socket) -> None:
        deadline = time.monotonic() + time_limit_s
        while True:
            now = time.monotonic()
            self.expire_held(now)
            self.send_due(now)
            if now >= deadline:
                self.stop()
                return
            wakeup = self.next_wakeup()
            timeout = deadline - now if wakeup is None else max(0.0, min(wakeup, deadline) - now)
            ready, _, _ = select.select([self.rx, wake_fd], [], [], timeout)
            if wake_fd in ready:  # SIGTERM / SIGINT
                self.stop()
                return
            if self.rx in ready:
                self.drain()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.lab.relay", description=__doc__.splitlines()[0])
    parser.add_argument("--listen", type=_host_port, required=True, help="ADDRESS:PORT to receive on")
    parser.add_argument("--to", type=_host_port, required=True, help="ADDRESS:PORT of the real receiver")
    parser.add_argument("--delay-ms", type=float, required=True)
    parser.add_argument("--jitter-ms", type=float, default=0.0)
    parser.add_argument("--swap-every", type=int, default=0, help="swap every Nth pair of datagrams (0: never)")
    parser.add_argument("--hold-ms", type=float, default=1000.0, help="how long a pair's first waits for the second")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--max-queue", type=int, default=10_000)
    parser.add_argument("--time-limit-s", type=float, default=30.0, help="stop by itself after this (max 600)")
    args = parser.parse_args(argv)
    if not 0 < args.time_limit_s <= 600:
        parser.error("--time-limit-s must be in (0, 600]")
    try:
        relay = Relay(
            args.listen,
            args.to,
            delay_ms=args.delay_ms,
            jitter_ms=args.jitter_ms,
            swap_every=args.swap_every,
            hold_ms=args.hold_ms,
            seed=args.seed,
            max_queue=args.max_queue,
        )
    except (ValueError, OSError) as exc:
        parser.error(str(exc))
    wake_r, wake_w = socket.socketpair()
    wake_w.setblocking(False)
    signal.set_wakeup_fd(wake_w.fileno())
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: None)  # the wakeup fd ends the loop
    try:
        print(f"relay listening on {args.listen[0]}:{args.listen[1]}", file=sys.stderr, flush=True)
        relay.run(args.time_limit_s, wake_r)
    finally:
        signal.set_wakeup_fd(-1)
        relay.close()
        wake_r.close()
        wake_w.close()
    print(json.dumps(relay.stats.as_dict(), sort_keys=True), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
