"""ITU-T G.107 E-model, the simplified variant qoectl uses everywhere.

Exactly this variant (see docs/qoe-models.md):

* effective delay ``d = one_way_delay + 2 * jitter + 10 ms`` (jitter buffer and codec)
* ``Id = 0.024 d`` for ``d <= 177.3`` else ``0.024 d + 0.11 (d - 177.3)``
* ``Ie,eff = Ie + (95 - Ie) * Ppl / (Ppl / BurstR + Bpl)``, ``Ppl`` in percent, ``BurstR = 1``
* ``R = 93.2 - Id - Ie,eff``
* ``MOS = 1`` for ``R < 0``, ``4.5`` for ``R > 100``, else ``1 + 0.035 R + 7e-6 R (R - 60)(100 - R)``

Codec impairments from ITU-T G.113 Appendix I.
"""

from __future__ import annotations

from dataclasses import dataclass

R0 = 93.2
D_KNEE = 177.3
FIXED_DELAY_MS = 10.0


@dataclass(frozen=True, slots=True)
class Codec:
    name: str
    ie: float
    bpl: float


CODECS: dict[str, Codec] = {
    "g711": Codec("g711", 0.0, 4.3),
    "g711-plc": Codec("g711-plc", 0.0, 25.1),
    "g729a": Codec("g729a", 11.0, 19.0),
}


@dataclass(frozen=True, slots=True)
class VoiceQuality:
    r: float
    mos: float
    effective_delay_ms: float
    id: float
    ie_eff: float


def codec(name: str) -> Codec:
    try:
        return CODECS[name]
    except KeyError:
        raise ValueError(f"unknown codec {name!r}: use one of {', '.join(CODECS)}") from None


def effective_delay(one_way_delay_ms: float, jitter_ms: float) -> float:
    return one_way_delay_ms + 2.0 * jitter_ms + FIXED_DELAY_MS


def delay_impairment(d: float) -> float:
    if d > D_KNEE:
        return 0.024 * d + 0.11 * (d - D_KNEE)
    return 0.024 * d


def delay_for_impairment(id_value: float) -> float:
    """Inverse of :func:`delay_impairment` (it is strictly increasing)."""
    if id_value <= 0.024 * D_KNEE:
        return id_value / 0.024
    return (id_value + 0.11 * D_KNEE) / (0.024 + 0.11)


def loss_impairment(loss_pct: float, c: Codec, burst_r: float = 1.0) -> float:
    if loss_pct <= 0:
        return c.ie
    return c.ie + (95.0 - c.ie) * loss_pct / (loss_pct / burst_r + c.bpl)


def loss_for_impairment(ie_eff: float, c: Codec, burst_r: float = 1.0) -> float:
    """Inverse of :func:`loss_impairment`: the loss (%) that yields ``ie_eff``."""
    y = (ie_eff - c.ie) / (95.0 - c.ie)
    if y <= 0:
        return 0.0
    if y >= burst_r:
        return 100.0
    return min(100.0, y * c.bpl / (1.0 - y / burst_r))


def mos_from_r(r: float) -> float:
    if r < 0:
        return 1.0
    if r > 100:
        return 4.5
    return 1.0 + 0.035 * r + 7e-6 * r * (r - 60.0) * (100.0 - r)


def r_from_mos(mos: float) -> float:
    """The R that gives ``mos`` (MOS is increasing in R on [0, 100])."""
    if mos <= 1.0:
        return 0.0
    if mos >= 4.5:
        return 100.0
    lo, hi = 0.0, 100.0
    for _ in range(80):
        mid = (lo + hi) / 2.0
        if mos_from_r(mid) < mos:
            lo = mid
        else:
            hi = mid
    return hi


def voice_quality(
    delay_ms: float, jitter_ms: float, loss_pct: float, codec_name: str = "g711", burst_r: float = 1.0
) -> VoiceQuality:
    if delay_ms < 0 or jitter_ms < 0 or loss_pct < 0:
        raise ValueError("delay, jitter and loss must not be negative")
    c = codec(codec_name)
    d = effective_delay(delay_ms, jitter_ms)
    id_value = delay_impairment(d)
    ie_eff = loss_impairment(loss_pct, c, burst_r)
    r = R0 - id_value - ie_eff
    return VoiceQuality(r=r, mos=mos_from_r(r), effective_delay_ms=d, id=id_value, ie_eff=ie_eff)


def best_mos(codec_name: str, delay_ms: float = 0.0, jitter_ms: float = 0.0, loss_pct: float = 0.0) -> float:
    return voice_quality(delay_ms, jitter_ms, loss_pct, codec_name).mos
