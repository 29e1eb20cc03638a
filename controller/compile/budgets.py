"""Derive network budgets (one-way delay, jitter, loss, throughput) from experience targets.

Each derivation records its steps in plain words so ``qoectl explain`` can show
how a target became numbers. Budgets the user pinned in the YAML are kept as
written; only the free dimensions are derived, and those are rounded *down*
(delay and jitter to 0.1 ms, loss to 0.001 %, 0.0001 % for TCP journeys) so a
rounded budget can never miss the target it came from; minimum throughputs are
rounded up. The methods are documented in ``docs/budgets.md``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from controller.model import BulkTarget, InteractiveTarget, Journey, Settings, VideoTarget, VoiceTarget
from controller.qoe import emodel

G114_ONE_WAY_MS = 150.0  # ITU-T G.114: keep one-way delay for interactive speech at or below this
VIDEO_CONF_DEFAULTS = (150.0, 30.0, 1.0)  # one-way ms, jitter ms, loss % (ITU-T G.1010, RFC 4594 4.4)
STREAM_SETUP_RTTS = 4  # TCP, TLS 1.3, manifest, first segment request
STREAM_INITIAL_BUFFER_S = 2.0  # media buffered before playback starts
STREAM_HEADROOM = 1.25  # ABR players pick a bitrate at about 80 % of measured throughput
MSS_BYTES = 1460
MATHIS_C = math.sqrt(1.5)
TCP_MIN_RTO_MS = 200.0


class BudgetError(ValueError):
    """The target cannot be met: carries the YAML field that causes it and a hint."""

    def __init__(self, field: str, message: str, hint: str) -> None:
        super().__init__(message)
        self.field = field
        self.hint = hint


@dataclass(frozen=True, slots=True)
class Budget:
    """Network budgets for one journey, end to end across the WAN path."""

    one_way_delay_ms: float | None
    jitter_ms: float | None
    loss_pct: float | None
    min_throughput_kbps: float | None
    mos: float | None
    pinned: tuple[str, ...]
    steps: tuple[str, ...]


def _down(x: float, digits: int) -> float:
    """Round a derived budget *down*: rounding a delay or loss budget up could miss the target it came from."""
    scale = 10.0**digits
    return math.floor(x * scale) / scale


def _up(x: float, digits: int) -> float:
    """Round a derived minimum (throughput) *up*, for the same reason."""
    scale = 10.0**digits
    return math.ceil(x * scale) / scale


def voice_budget(t: VoiceTarget, settings: Settings) -> Budget:
    c = emodel.codec(t.codec)
    pinned = tuple(n for n in ("one_way_delay_ms", "jitter_ms", "loss_pct") if getattr(t, n) is not None)
    steps: list[str] = []
    if t.mos is None:
        assert t.one_way_delay_ms is not None and t.jitter_ms is not None and t.loss_pct is not None
        q = emodel.voice_quality(t.one_way_delay_ms, t.jitter_ms, t.loss_pct, t.codec)
        steps.append(f"budgets pinned: {t.one_way_delay_ms} ms one-way, {t.jitter_ms} ms jitter, {t.loss_pct} % loss")
        steps.append(f"E-model at those budgets with {t.codec}: R = {q.r:.1f}, MOS = {q.mos:.2f}")
        return Budget(t.one_way_delay_ms, t.jitter_ms, t.loss_pct, None, None, pinned, tuple(steps))

    best = emodel.voice_quality(0, 0, 0, t.codec)
    if t.mos > best.mos:
        raise BudgetError(
            "spec.target.voice.mos",
            f"MOS {t.mos} cannot be reached with {t.codec}: its best, at zero delay and loss, is {best.mos:.2f}",
            f"lower the target to at most {math.floor(best.mos * 100) / 100:.2f} or use a better codec (g711)",
        )
    r_target = emodel.r_from_mos(t.mos)
    headroom = best.r - r_target
    steps.append(
        f"MOS {t.mos} needs R >= {r_target:.2f}; {t.codec} (Ie {c.ie}, Bpl {c.bpl}) reaches R {best.r:.2f} "
        f"at zero impairment: headroom {headroom:.2f}"
    )
    split = settings.voice_split
    base_id = emodel.delay_impairment(emodel.FIXED_DELAY_MS)
    owd_pinned, jitter_pinned = t.one_way_delay_ms is not None, t.jitter_ms is not None
    delay_fixed, loss_fixed = owd_pinned and jitter_pinned, t.loss_pct is not None

    # The least impairment the pinned budgets use (a free one-way delay or jitter counted as zero).
    pinned_d = emodel.effective_delay(t.one_way_delay_ms or 0.0, t.jitter_ms or 0.0)
    min_delay = emodel.delay_impairment(pinned_d) - base_id
    min_loss = emodel.loss_impairment(t.loss_pct, c) - c.ie if t.loss_pct is not None else 0.0
    if min_delay + min_loss > headroom + 1e-9:
        raise BudgetError(
            "spec.target.voice." + pinned[0],
            f"the pinned budgets leave no room for MOS {t.mos} with {t.codec} "
            f"(they use R {min_delay + min_loss:.2f} of {headroom:.2f} available)",
            "loosen the MOS target or tighten the pinned budgets",
        )
    if delay_fixed and loss_fixed:
        delay_room, loss_room = min_delay, min_loss
    elif delay_fixed:
        delay_room, loss_room = min_delay, headroom - min_delay
    elif loss_fixed:
        delay_room, loss_room = headroom - min_loss, min_loss
    else:
        # A pinned one-way delay or jitter alone may need more than the delay share: give it what it needs.
        delay_room = max(headroom * split.delay_share, min_delay)
        loss_room = headroom - delay_room
        steps.append(
            f"split headroom: {delay_room / headroom if headroom else 0:.0%} to delay+jitter ({delay_room:.2f}), "
            f"{loss_room / headroom if headroom else 0:.0%} to loss ({loss_room:.2f})"
        )

    loss = t.loss_pct if t.loss_pct is not None else emodel.loss_for_impairment(c.ie + loss_room, c)
    d_eff = emodel.delay_for_impairment(base_id + delay_room)
    room_ms = max(0.0, d_eff - emodel.FIXED_DELAY_MS)  # one_way + 2 * jitter
    if t.one_way_delay_ms is not None and t.jitter_ms is not None:
        owd, jitter = t.one_way_delay_ms, t.jitter_ms
    elif t.one_way_delay_ms is not None:
        owd = t.one_way_delay_ms
        jitter = max(0.0, (room_ms - owd) / 2)
    elif t.jitter_ms is not None:
        jitter = t.jitter_ms
        owd = room_ms - 2 * jitter
    else:
        jitter = room_ms * split.jitter_fraction / 2
        owd = room_ms - 2 * jitter
        steps.append(
            f"delay room: effective delay {d_eff:.1f} ms = one-way + 2 x jitter + 10 ms; "
            f"jitter gets {split.jitter_fraction:.0%} of it: jitter {jitter:.1f} ms, one-way {owd:.1f} ms"
        )
    if not owd_pinned and owd > G114_ONE_WAY_MS:
        steps.append(f"one-way {owd:.1f} ms capped at {G114_ONE_WAY_MS:.0f} ms (ITU-T G.114 for conversation)")
        owd = G114_ONE_WAY_MS
    # Pinned values are kept exactly as written; derived ones are rounded down, never up.
    if not owd_pinned:
        owd = _down(owd, 1)
    if not jitter_pinned:
        jitter = _down(jitter, 1)
    if not loss_fixed:
        loss = _down(loss, 3)
    if owd <= 0:
        if jitter_pinned:
            raise BudgetError(
                "spec.target.voice.jitter_ms",
                f"jitter {jitter} ms leaves no one-way delay budget for MOS {t.mos}",
                "lower the jitter budget",
            )
        raise BudgetError(
            "spec.target.voice.mos",
            f"MOS {t.mos} with {t.codec} leaves no one-way delay budget (headroom R {headroom:.2f})",
            "lower the MOS target",
        )
    q = emodel.voice_quality(owd, jitter, loss, t.codec)
    steps.append(
        f"budgets: one-way {owd:g} ms, jitter {jitter:g} ms, loss {loss:g} % "
        f"-> R {q.r:.2f}, MOS {q.mos:.2f} (target {t.mos})"
    )
    return Budget(owd, jitter, loss, None, t.mos, pinned, tuple(steps))


def _mathis_loss_pct(throughput_kbps: float, rtt_ms: float) -> float:
    """Largest loss (%) at which one TCP flow still reaches ``throughput`` (Mathis et al. 1997)."""
    rtt_s = max(rtt_ms, 1.0) / 1000.0
    p = (MATHIS_C * MSS_BYTES * 8 / 1000.0 / (rtt_s * throughput_kbps)) ** 2
    return min(p * 100.0, 10.0)


def video_budget(t: VideoTarget, journey: Journey) -> Budget:
    pinned = tuple(n for n in ("one_way_delay_ms", "jitter_ms", "loss_pct") if getattr(t, n) is not None)
    steps: list[str] = []
    if t.mode == "conferencing":
        owd0, jit0, loss0 = VIDEO_CONF_DEFAULTS
        owd = t.one_way_delay_ms if t.one_way_delay_ms is not None else owd0
        jitter = t.jitter_ms if t.jitter_ms is not None else jit0
        loss = t.loss_pct if t.loss_pct is not None else loss0
        throughput = t.bitrate_kbps * 1.2
        steps.append(
            f"interactive video: one-way {owd} ms, jitter {jitter} ms, loss {loss} % (ITU-T G.1010 / RFC 4594 "
            f"defaults unless pinned); per call {throughput:.0f} kbps = bitrate x 1.2 for RTP/UDP/IP overhead"
        )
        return Budget(owd, jitter, loss, _up(throughput, 1), None, pinned, tuple(steps))

    flow = journey.bandwidth.per_flow_kbps or 0.0
    throughput = max(t.bitrate_kbps * STREAM_HEADROOM, flow)
    steps.append(
        f"streaming: each player needs >= {throughput:.0f} kbps "
        f"(bitrate {t.bitrate_kbps:.0f} x {STREAM_HEADROOM} ABR headroom, or the per-flow bandwidth if larger)"
    )
    stream_owd: float | None = t.one_way_delay_ms
    if stream_owd is None and t.startup_s is not None:
        transfer_s = STREAM_INITIAL_BUFFER_S * t.bitrate_kbps / throughput
        left_s = t.startup_s - transfer_s
        if left_s <= 0:
            raise BudgetError(
                "spec.target.video.startup_s",
                f"start-up {t.startup_s} s cannot be met: fetching the first {STREAM_INITIAL_BUFFER_S:.0f} s of "
                f"media at {throughput:.0f} kbps alone takes {transfer_s:.2f} s",
                "allow a longer start-up, or raise bandwidth.per_flow_kbps",
            )
        rtt_ms = left_s * 1000.0 / STREAM_SETUP_RTTS
        stream_owd = rtt_ms / 2
        steps.append(
            f"start-up {t.startup_s} s = {STREAM_SETUP_RTTS} RTT of set-up + {transfer_s:.2f} s initial buffer: "
            f"RTT <= {rtt_ms:.0f} ms, one-way <= {stream_owd:.0f} ms"
        )
    stream_loss: float | None = t.loss_pct
    if stream_loss is None and stream_owd is not None:
        stream_loss = _mathis_loss_pct(throughput, 2 * stream_owd)
        steps.append(
            f"TCP reaches {throughput:.0f} kbps at RTT {2 * stream_owd:.0f} ms only below {stream_loss:.4f} % loss "
            f"(Mathis: rate <= MSS/RTT x 1.22/sqrt(p))"
        )
    if t.rebuffering_pct is not None:
        steps.append(
            f"rebuffering <= {t.rebuffering_pct} % is protected by the throughput headroom; it is checked "
            "from measurements by qoectl verify"
        )
    if stream_owd is not None and t.one_way_delay_ms is None:
        stream_owd = _down(stream_owd, 1)
    if stream_loss is not None and t.loss_pct is None:
        stream_loss = _down(stream_loss, 4)
    return Budget(stream_owd, t.jitter_ms, stream_loss, _up(throughput, 1), None, pinned, tuple(steps))


def interactive_budget(t: InteractiveTarget) -> Budget:
    steps: list[str] = []
    basis = min(t.apdex_t_ms, t.response_time_ms) if t.response_time_ms else t.apdex_t_ms
    rtt = basis * t.network_share / t.round_trips
    owd = rtt / 2
    steps.append(
        f"Apdex T {t.apdex_t_ms:.0f} ms: the network may use {t.network_share:.0%} of "
        f"{basis:.0f} ms over {t.round_trips} round trips: RTT <= {rtt:.0f} ms, one-way <= {owd:.0f} ms"
    )
    frustrated_share = (1.0 - t.apdex) / 2.0
    packets = 2 * t.round_trips
    loss_pct = (1.0 - (1.0 - frustrated_share) ** (1.0 / packets)) * 100.0 if frustrated_share > 0 else 0.0
    steps.append(
        f"a lost packet costs a TCP timeout (>= {TCP_MIN_RTO_MS:.0f} ms); to keep Apdex {t.apdex} at most "
        f"{frustrated_share:.1%} of transactions ({packets} packets each) may see one: loss <= {loss_pct:.3f} %"
    )
    return Budget(_down(owd, 1), None, _down(loss_pct, 4), None, None, (), tuple(steps))


def bulk_budget(t: BulkTarget) -> Budget:
    steps = [
        f"bulk: at least {t.min_throughput_kbps:.0f} kbps"
        + (", scavenger (uses only idle capacity)" if t.scavenger else "")
        + "; no delay or loss budget"
    ]
    return Budget(None, None, None, t.min_throughput_kbps or None, None, (), tuple(steps))


def derive(journey: Journey, settings: Settings) -> Budget:
    t = journey.target
    if isinstance(t, VoiceTarget):
        return voice_budget(t, settings)
    if isinstance(t, VideoTarget):
        return video_budget(t, journey)
    if isinstance(t, InteractiveTarget):
        return interactive_budget(t)
    return bulk_budget(t)
