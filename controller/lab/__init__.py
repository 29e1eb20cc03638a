"""``qoectl lab``: a real data plane on this machine, for proving the control loop (root only).

A lab file (``kind: Lab``, :mod:`controller.spec.lab`) describes hosts and Linux routers as network
namespaces joined by veth links, a WAN whose real capacity is a FIFO bottleneck in an ISP namespace
outside the routers, background traffic and the probes of each journey. One module per concern:

=================  ========================================================================
``config``         the lab file -> a checked, frozen :class:`~controller.lab.config.LabConfig`
``state``          the running lab's state folder (``/run/qoectl/lab/<name>/``)
``netns``          namespaces and the processes in them, by name and PID (+ start time)
``topology``       namespaces, links, addresses, routes; the ISP's bottleneck and its capacity
``sshd``           one OpenSSH server per router, reached by ``qoectl apply`` with verified keys
``traffic``        the background generators as processes; ``gen``: the generators themselves
``control``        up / down / status / load / capacity
``measure``        the measurement API (probes + queue state); ``probe``: its probe processes;
                   ``queues``: ``tc -s -d`` readings
``policy``         the lab's policy aimed at a lab kept elsewhere than the defaults
=================  ========================================================================

See docs/lab.md.
"""
