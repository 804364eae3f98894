"""Every one of the 13 step definitions completes against the simulated fleet, end to end."""

from __future__ import annotations

from ..conftest import Scenario

PEM = (
    "-----BEGIN CERTIFICATE-----\\n"
    "MIIBszCCAVmgAwIBAgIUFQmL3m2cPjE8l4c8dQv3w1m5p6owCgYIKoZIzj0EAwIw\\n"
    "-----END CERTIFICATE-----\\n"
)

ALL_STEPS = f"""
- {{name: command, definition: Command Execution, properties: {{command: echo, arguments: [hi]}}}}
- name: configuration
  definition: Configuration Put
  properties:
    configurations:
      - pid: org.eclipse.kura.cloud.publisher.CloudPublisher-warehouse
        properties: {{publish.interval: 300}}
- {{name: bundle-stop, definition: Bundle Stop, properties: {{bundleId: 42}}}}
- {{name: bundle-start, definition: Bundle Start, properties: {{bundleId: 42}}}}
- name: download
  definition: Package Download / Install
  properties: {{uri: "http://repo.example.com/x-1.0.dp", name: com.example.x, version: 1.0.0}}
- name: uninstall
  definition: Package Uninstall
  properties: {{name: com.acme.monitoring.agent, version: 2.3.1}}
- name: asset
  definition: Asset Write
  properties:
    assets:
      - name: cold-room-controller
        channels: [{{name: alarm-threshold, type: DOUBLE, value: -18.0}}]
- name: trust
  definition: Keystore Certificate Create
  properties: {{keystoreId: SSLKeystore, alias: ca-2027, certificate: "{PEM}"}}
- name: keypair
  definition: Keystore Keypair Create
  properties: {{keystoreId: SSLKeystore, alias: client-2027, algorithm: EC, size: 256,
                signatureAlgorithm: SHA256withECDSA, attributes: "CN=gw,O=ACME"}}
- {{name: untrust, definition: Keystore Item Delete,
   properties: {{keystoreId: SSLKeystore, alias: ca-2027}}}}
- name: certificate-install
  definition: Device Certificate Management Install
  properties: {{certificate: "{PEM}", alias: device-2027}}
- name: certificate-revoke
  definition: Device Certificate Management Revoke
  properties: {{alias: device-2026}}
- name: activity
  definition: Activity Submit
  properties: {{activityUri: "http://repo.example.com/playbook.zip"}}
"""


def test_all_thirteen_step_definitions_complete(scenario: Scenario) -> None:
    scenario.registry(2)
    fleet = scenario.fleet(2)
    scenario.job("everything", ALL_STEPS)

    scenario.reconcile()

    statuses = scenario.statuses("everything")
    messages = scenario.messages("everything")
    assert statuses == {"gw-0001": (12, "PROCESS_OK"), "gw-0002": (12, "PROCESS_OK")}, messages
    operations = [r.operation for r in fleet.requests("gw-0001")]
    assert operations == [
        "command",
        "configuration",
        "bundle-stop",
        "bundle-start",
        "download",
        "uninstall",
        "asset-write",
        "keystore-certificate",
        "keystore-keypair",
        "keystore-delete",
        "certificate-install",
        "certificate-revoke",
        "activity",
    ]
    device = fleet.device("gw-0001").state
    assert "com.example.x" in {p.name for p in device.packages.values()}
