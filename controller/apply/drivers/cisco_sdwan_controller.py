"""Cisco Catalyst SD-WAN controller (vSmart in CLI mode): the fleet's centralized policy, through ``cisco_viptela``.

The file is ``centralized-policy.cfg`` merged from every Cisco SD-WAN edge's
(:mod:`controller.apply.sdwan`): SLA classes, lists, app-route policies and
the ``apply-policy`` site lists qoectl created. A vSmart edits a private
candidate in ``config`` and ``commit`` validates and activates it as a whole;
see :mod:`controller.apply.drivers._confd`. A vSmart in vManage mode
(``vManaged: true``) refuses CLI policy: the apply stops before sending anything
and the policy goes through SD-WAN Manager.
"""

from __future__ import annotations

from controller.apply.drivers._confd import ConfdDriver


class CiscoSdwanControllerDriver(ConfdDriver):
    platform = "cisco_sdwan_controller"
    device_type = "cisco_viptela"
    config_file = "centralized-policy.cfg"
    show_command = "show running-config"
    status_command = "show system status"
    enter_command = "config"


DRIVER = CiscoSdwanControllerDriver
