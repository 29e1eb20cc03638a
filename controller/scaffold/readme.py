"""The README of a repository made by ``qoectl init``: for the engineers who change journey targets in it."""

from __future__ import annotations

README = """# Network QoS policy (qoectl)

This repository holds the **journey targets** of our network: what experience each application must get
(voice MOS, web Apdex, bulk throughput). [qoectl](https://pypi.org/project/qoectl/) {version} turns them
into router QoS. Nothing reaches a router except through the pipeline.

## Layout

| path | what |
|---|---|
| `policies/journeys/` | one or more `kind: Journey` documents per file: traffic match, target, priority, bandwidth |
| `policies/inventory/` | sites, WAN transports and devices (credentials only as environment variable names) |
| `policies/qoectl.yaml` | settings (priority cap, class-default minimum) |
| `schema/qoectl-v1.schema.json` | the JSON Schema of every file's `# yaml-language-server:` line (editor checks) |
| `known_hosts` | the devices' SSH host keys; `qoectl apply` refuses any other key |
| `measurements/` | samples `qoectl verify` reads until real sources are set (`QOECTL_VERIFY_SOURCES`) |
| `.gitlab-ci.yml`, `.github/workflows/qoectl.yml` | the pipeline (use the one of your forge, delete the other) |

## Changing a target

```console
pip install qoectl=={version} pre-commit
pre-commit install                       # validates the YAML you commit, file:line for each problem
git switch -c raise-voice-target
$EDITOR policies/journeys/journeys.yaml
qoectl validate                          # every problem at once, exit 1 on errors
qoectl plan                              # renders into out/<device>/, shows the diff; exit 2 = changes
git commit -am "voice: MOS 4.1" && git push -u origin HEAD   # then open a merge / pull request
```

## What the pipeline does

1. **validate** (every push and merge request): `qoectl validate --junit`; each problem shows at its file and
   line in the merge request's test report; a failure blocks the merge.
2. **plan** (merge requests): the change against the target branch as a comment (devices, +/- lines, the
   budgets that changed, notes) and the rendered configs and `plan.json` as artifacts.
3. **canary** (default branch, after the merge): waits for a person to press play (protected environment
   `production`), then applies to the devices tagged `canary`.
4. **apply**: the other devices, split across parallel jobs (`qoectl apply --shard K/N`); each job keeps its
   audit log (`qoectl-runs/*/audit.jsonl`) as an artifact. A device that fails is rolled back to its backup.
5. **verify** (after apply, and on the schedule): measured experience against the targets, JUnit + HTML.
6. **propose** (schedule): `qoectl loop --propose` reads the same measurements and, when a journey keeps
   missing its target, opens a merge request with the change it suggests. It never applies anything.

## Set-up (once)

- CI secret variables: `QOECTL_SSH_USER`, `QOECTL_SSH_KEY` (GitLab: a *File* variable; GitHub: a secret with
  the key's text); GitLab also `QOECTL_GITLAB_TOKEN` (project access token, scopes `api`,
  `write_repository`) for the plan comment and the loop's merge requests.
- A protected environment `production` whose approvers are the people allowed to apply.
- The devices' host keys in `known_hosts` (checked out of band), their addresses in
  `policies/inventory/devices.yaml`.
- A pipeline schedule (GitLab: CI/CD -> Schedules; GitHub: the `schedule:` in the workflow) and
  `QOECTL_VERIFY_SOURCES` pointing at your measurements (`--prometheus URL` or `--measurements FILE`).
"""


def readme(version: str) -> str:
    return README.format(version=version)
