Feature: Apply QoS configs to devices over SSH, like terraform apply
  Network engineers apply the compiled configs from a CI pipeline.
  qoectl shows the diff, backs every device up, pushes, checks, and never
  leaves a device half-done: a device that fails is returned to its backup.

  Background:
    Given a lab of two Linux routers and an IOS-XE router

  Scenario: Apply the example policies, then apply again
    When I apply the example policies
    Then every router reports "changed"
    And every router reports voice in a strict-priority class
    When I apply again
    Then nothing is sent
    And every router reports "unchanged"

  Scenario: A dry run shows the diff and sends nothing
    When I apply the example policies with "--dry-run"
    Then every router reports "would_change"
    And every router is left as it was

  Scenario Outline: A router that drops the session mid-push
    Given the router "<router>" drops the session mid-push
    When I apply the example policies with "--on-failure continue"
    Then that router is left as it was
    And that router reports "rolled_back"
    And the others are changed

    Examples:
      | router  |
      | linux-1 |
      | ios-1   |
