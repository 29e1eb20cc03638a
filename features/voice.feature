Feature: Voice keeps its strict-priority queue everywhere
  Network engineers state what calls need; qoectl must turn that into a
  policed strict-priority queue on every WAN link, on every platform, without
  letting priority traffic take over a link.

  Scenario: Branch routers protect voice without starving the link
    Given the example policies
    When they are compiled
    Then every branch router gives voice strict priority
    And no WAN link carries more than 33 % priority traffic

  Scenario: Every WAN edge marks voice EF and keeps it inside its budget
    Given the example policies
    When they are compiled
    Then every device tagged "wan-edge" gives "voice" strict priority
    And journey "voice" is marked "ef" on every device tagged "wan-edge"
    And the one-way delay budget for "voice" is at most 150 ms
    And the jitter budget for "voice" is at most 30 ms

  Scenario: The rendered configs say strict priority in each platform's own words
    Given the example policies
    When they are rendered for every platform
    Then voice is strict priority on every platform
    And the SD-WAN SLA class for voice allows no more than 150 ms latency
    And the "cisco_iosxe" config of "br1-rtr1" contains "priority level 1"
    And the "linux" config of "br2-rtr1" contains "meta priority set"

  Scenario: A journey scoped to one site stays at that site
    Given a policy repository with:
      """
      # file: inventory.yaml
      apiVersion: qoectl/v1
      kind: Inventory
      metadata: {name: lab}
      spec:
        sites:
          - {name: hq, context: campus}
          - {name: shop-1, context: branch}
        transports:
          - {name: mpls, base_delay_ms: 20, jitter_ms: 2, loss_pct: 0.01}
        devices:
          - name: hq-r1
            platform: linux
            host: 198.18.0.1
            site: hq
            tags: [wan-edge]
            interfaces:
              - {name: wan0, role: wan, transport: mpls, bandwidth_kbps: 50000}
              - {name: lan0, role: lan}
          - name: shop1-r1
            platform: linux
            host: 198.18.0.2
            site: shop-1
            tags: [wan-edge]
            interfaces:
              - {name: wan0, role: wan, transport: mpls, bandwidth_kbps: 20000}
              - {name: lan0, role: lan}
      # file: journeys/pos.yaml
      apiVersion: qoectl/v1
      kind: Journey
      metadata: {name: pos-payments}
      spec:
        traffic:
          match: [{protocol: tcp, destination_ports: [8443], destination_prefixes: [198.18.40.0/24]}]
        target: {interactive: {apdex_t_ms: 800, apdex: 0.95}}
        priority: high
        bandwidth: {share_pct: 2}
        scope: {contexts: [branch]}
      """
    When they are rendered for every platform
    Then validation succeeds
    And there are 2 device plans
    And journey "pos-payments" is marked "af21" on every branch router
    And "pos-payments" is not carried by every device at site "hq"
    And the "linux" config of "shop1-r1" contains "tcp dport 8443"
    And the "linux" config of "hq-r1" does not contain "pos-payments"
