Feature: Verify measured outcomes against the journey targets
  Network engineers promise experiences in YAML; qoectl verify tells, per journey
  and site, whether users get them, from real measurements, in forms CI and people use.

  Scenario: Voice out of target at one branch
    Given measurements where branch-2 voice has 180 ms delay and 3 % loss
    When I verify
    Then the voice journey fails at branch-2 with MOS below 4.0
    And the JUnit report has one failing case

  Scenario: Good network, unhappy users
    Given good network measurements and poor survey scores
    When I verify
    Then the report shows a perception gap

  Scenario: No data is unknown, never a pass
    Given measurements for branch-1 only
    When I verify
    Then the voice journey is unknown at hq with no measurements
    And the JUnit report has no failing case but skipped cases
