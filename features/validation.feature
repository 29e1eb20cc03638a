Feature: Policies that cannot work are refused, pointing at the line to fix
  Every problem names the file, the line and the field, and says what would be
  right. These scenarios write small repositories inline.

  Background:
    Given a policy repository with:
      """
      # file: inventory.yaml
      apiVersion: qoectl/v1
      kind: Inventory
      metadata: {name: lab}
      spec:
        sites:
          - {name: branch-1, context: branch}
        transports:
          - {name: mpls, base_delay_ms: 20, jitter_ms: 2, loss_pct: 0.01}
        devices:
          - name: br1-r1
            platform: cisco_iosxe
            host: 198.18.1.1
            site: branch-1
            tags: [wan-edge]
            interfaces:
              - {name: GigabitEthernet0/0/0, role: wan, transport: mpls, bandwidth_kbps: 10000}
              - {name: GigabitEthernet0/0/1, role: lan}
      """

  Scenario: Too many calls for the priority queue
    Given a policy file "journeys/voice.yaml" with:
      """
      apiVersion: qoectl/v1
      kind: Journey
      metadata: {name: voice}
      spec:
        traffic:
          match: [{protocol: udp, destination_ports: ["16384-32767"], destination_prefixes: [198.18.64.0/18]}]
        target: {voice: {codec: g711, mos: 4.0}}
        priority: critical
        bandwidth: {per_flow_kbps: 90, concurrent_flows: 50}
      """
    When they are validated
    Then validation fails with "above the 33 % cap"
    And the error points at "journeys/voice.yaml" line 9, field "spec.bandwidth"

  Scenario: A MOS that g729a can never reach
    Given a policy file "journeys/voice.yaml" with:
      """
      apiVersion: qoectl/v1
      kind: Journey
      metadata: {name: voice}
      spec:
        traffic:
          match: [{protocol: udp, destination_ports: ["16384-32767"], destination_prefixes: [198.18.64.0/18]}]
        target:
          voice:
            codec: g729a
            mos: 4.3
        priority: critical
        bandwidth: {per_flow_kbps: 40, concurrent_flows: 10}
      """
    When they are validated
    Then validation fails with "MOS 4.3 cannot be reached with g729a"
    And the error points at "journeys/voice.yaml" line 10, field "spec.target.voice.mos"

  Scenario: Two journeys claim the same packets
    Given a policy file "journeys/apps.yaml" with:
      """
      apiVersion: qoectl/v1
      kind: Journey
      metadata: {name: crm}
      spec:
        traffic:
          match: [{protocol: tcp, destination_ports: [443], destination_prefixes: [198.18.10.0/24]}]
        target: {interactive: {apdex_t_ms: 1000, apdex: 0.9}}
        priority: high
        bandwidth: {share_pct: 10}
      ---
      apiVersion: qoectl/v1
      kind: Journey
      metadata: {name: web-backup}
      spec:
        traffic:
          match:
            - {protocol: tcp, destination_ports: [443], destination_prefixes: [198.18.0.0/16]}
        target: {bulk: {min_throughput_kbps: 500}}
        priority: low
        bandwidth: {share_pct: 5}
      """
    When they are validated
    Then validation fails with "journey 'web-backup' claims traffic that journey 'crm' also claims"
    And the error points at "journeys/apps.yaml" line 17

  Scenario: A misspelt field is named, with the right spelling
    Given a policy file "journeys/voice.yaml" with:
      """
      apiVersion: qoectl/v1
      kind: Journey
      metadata: {name: voice}
      spec:
        traffic:
          match: [{protocol: udp, destination_ports: [5004]}]
        target: {voice: {codec: g711, mos: 4.0}}
        bandwith: {per_flow_kbps: 90, concurrent_flows: 5}
      """
    When they are validated
    Then validation fails with "did you mean 'bandwidth'?"
    And the error points at "journeys/voice.yaml" line 8, field "spec.bandwith"

  Scenario: Nothing written in YAML can add a line to a device config
    Given a policy file "journeys/evil.yaml" with:
      """
      apiVersion: qoectl/v1
      kind: Journey
      metadata: {name: "voice\ninterface Loopback666"}
      spec:
        traffic:
          match: [{protocol: udp, destination_ports: [5004]}]
        target: {voice: {codec: g711, mos: 4.0}}
        bandwidth: {per_flow_kbps: 90, concurrent_flows: 5}
      """
    When they are validated
    Then validation fails with "metadata.name: invalid value"
    And the error points at "journeys/evil.yaml" line 3

  Scenario: The small repository itself is fine
    When they are rendered for every platform
    Then validation succeeds
    And the "cisco_iosxe" config of "br1-r1" contains "interface GigabitEthernet0/0/0"
