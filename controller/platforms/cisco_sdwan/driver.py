"""Cisco Catalyst SD-WAN edge (cEdge, IOS-XE in controller mode): the localized policy in ``config-transaction``.

The edge gets ``localized-policy.cfg`` (forwarding classes, the marking access
list, QoS schedulers and maps, and their attachment to the WAN and LAN
interfaces). An edge in controller mode takes SD-WAN configuration only in a
``config-transaction`` (ConfD candidate + ``commit``), not in ``configure
terminal``; it is read with ``show sdwan running-config``. See
:mod:`controller.apply.drivers._confd` for ownership, the transaction and the
rollback. ``centralized-policy.cfg`` is not for the edge: qoectl apply merges
every edge's into one controller config (:mod:`controller.apply.sdwan`).
"""

from __future__ import annotations

from controller.apply.drivers._confd import ConfdDriver


class CiscoSdwanEdgeDriver(ConfdDriver):
    platform = "cisco_sdwan"
    device_type = "cisco_xe"
    config_file = "localized-policy.cfg"
    show_command = "show sdwan running-config"
    status_command = "show sdwan system status"
    enter_command = "config-transaction"


DRIVER = CiscoSdwanEdgeDriver
