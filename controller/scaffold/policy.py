"""The example policy a new repository starts with: three journeys, one site, two Linux routers.

It validates and plans as it is (nothing is contacted before ``qoectl apply``); the inventory's hosts are
documentation addresses (RFC 5737) to be replaced by the real routers.
"""

from __future__ import annotations

SCHEMA_LINE = "# yaml-language-server: $schema={rel}schema/qoectl-v1.schema.json\n"

JOURNEYS = """apiVersion: qoectl/v1
kind: Journey
metadata:
  name: voice
  owner: uc-team@example.com
  description: Softphone and desk-phone calls (RTP media). Users must hear toll quality.
spec:
  traffic:
    application: voip
    category: voice
    match:
      - protocol: udp
        destination_ports: ["16384-32767"]
  target:
    voice:
      codec: g711
      mos: 4.0
  priority: critical
  bandwidth:
    per_flow_kbps: 90
    concurrent_flows: 10
  scope:
    device_tags: [wan-edge]
---
apiVersion: qoectl/v1
kind: Journey
metadata:
  name: crm-web
  owner: sales-it@example.com
  description: The CRM web application used by sales in every branch.
spec:
  traffic:
    application: crm
    category: business
    match:
      - protocol: tcp
        destination_ports: [443]
        destination_prefixes: [10.50.10.0/24]
  target:
    interactive:
      apdex_t_ms: 1000
      apdex: 0.9
      response_time_ms: 1000
  priority: high
  bandwidth:
    share_pct: 15
  scope:
    device_tags: [wan-edge]
---
apiVersion: qoectl/v1
kind: Journey
metadata:
  name: backups
  owner: storage@example.com
  description: Backups to the data centre; they may use what is left.
spec:
  traffic:
    application: backup
    category: bulk
    match:
      - protocol: tcp
        destination_ports: [8400]
  target:
    bulk:
      min_throughput_kbps: 2000
  priority: low
  bandwidth:
    share_pct: 10
  scope:
    device_tags: [wan-edge]
"""

SITES = """apiVersion: qoectl/v1
kind: Inventory
metadata:
  name: sites
  owner: netops@example.com
  description: Sites and WAN transports.
spec:
  sites:
    - name: branch-1
      context: branch
  transports:
    - name: biz-internet
      base_delay_ms: 35
      jitter_ms: 5
      loss_pct: 0.1
"""

DEVICES = """apiVersion: qoectl/v1
kind: Inventory
metadata:
  name: devices
  owner: netops@example.com
  description: >
    The routers qoectl configures. Credentials are never written here: only the names of
    environment variables (CI secret variables) and key files the pipeline writes from them.
    Host keys are checked against the committed known_hosts file.
spec:
  devices:
    - name: br1-rtr1
      platform: linux
      host: 192.0.2.11              # replace with the management address
      site: branch-1
      tags: [wan-edge, canary]      # the canary job applies to tag:canary first
      credentials:
        username_env: QOECTL_SSH_USER
        key_file: .qoectl/ssh_key   # written by the pipeline from the QOECTL_SSH_KEY secret
      interfaces:
        - {name: wan0, role: wan, transport: biz-internet, bandwidth_kbps: 20000}
        - {name: lan0, role: lan, trust_dscp: false}
    - name: br1-rtr2
      platform: linux
      host: 192.0.2.12
      site: branch-1
      tags: [wan-edge]
      credentials:
        username_env: QOECTL_SSH_USER
        key_file: .qoectl/ssh_key
      interfaces:
        - {name: wan0, role: wan, transport: biz-internet, bandwidth_kbps: 20000}
        - {name: lan0, role: lan, trust_dscp: false}
"""

SETTINGS = """apiVersion: qoectl/v1
kind: Settings
metadata:
  name: defaults
  owner: netops@example.com
spec:
  priority_cap_pct: 33
  default_class_min_pct: 5
"""

KNOWN_HOSTS = """# The SSH host keys of the devices in policies/inventory/, one line each as ssh-keyscan prints them
# ([host]:port for ports other than 22). qoectl apply refuses a device whose key is not here.
# Check a key out of band before committing it: ssh-keyscan -t ed25519 HOST | ssh-keygen -lf -
"""

# Samples for `qoectl verify` until real sources are configured (QOECTL_VERIFY_SOURCES): one 5-minute window.
MEASUREMENTS = "timestamp,journey,site,metric,value\n" + "".join(
    f"{1735689600 + 60 * i},{journey},branch-1,{metric},{value}\n"
    for i in range(5)
    for journey, metric, value in (
        ("voice", "one_way_delay_ms", 38 + i),
        ("voice", "jitter_ms", 2),
        ("voice", "loss_pct", 0.05),
        ("crm-web", "response_time_ms", 180 + 20 * i),
        ("backups", "throughput_kbps", 6000 + 100 * i),
    )
)

GITIGNORE = """# qoectl outputs and the key the pipeline writes: never committed
/out/
/base/
/base-out/
/reports/
/qoectl-runs/
/proposals/
/.qoectl/
/.qoectl-loop/
"""


def policy_files() -> dict[str, str]:
    """Path (relative to the repository) -> text of the example policy, each YAML with its schema line."""
    yaml = {
        "policies/qoectl.yaml": ("../", SETTINGS),
        "policies/journeys/journeys.yaml": ("../../", JOURNEYS),
        "policies/inventory/sites.yaml": ("../../", SITES),
        "policies/inventory/devices.yaml": ("../../", DEVICES),
    }
    files = {path: SCHEMA_LINE.format(rel=rel) + text for path, (rel, text) in yaml.items()}
    files["known_hosts"] = KNOWN_HOSTS
    files["measurements/samples.csv"] = MEASUREMENTS
    files[".gitignore"] = GITIGNORE
    return files
