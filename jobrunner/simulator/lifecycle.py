"""BIRTH, APPS and DC payloads of a simulated gateway (kura-protocol.md §3).

Every birth metric is a STRING, as Kura sends them; null ones are left out. A birth
carries a position near Turin, a little different for each device. The LWT (MQTT will) is
an empty payload, Kura's default `lwt.payload`.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

from jobrunner.device.payload import KuraPayload, Metric, MetricType, Position
from jobrunner.simulator.config import DeviceProfile
from jobrunner.simulator.observe import LifecycleKind

if TYPE_CHECKING:
    from jobrunner.simulator.device import SimDevice


def _text(value: str) -> Metric:
    return Metric(MetricType.STRING, value)


def birth_payload(
    client_id: str,
    index: int,
    profile: DeviceProfile,
    apps: tuple[str, ...],
    uptime_ms: int,
    now_ms: int,
) -> KuraPayload:
    """The BIRTH (and APPS) payload of device number `index`."""
    mac = f"B8:27:EB:{(index >> 16) & 0xFF:02X}:{(index >> 8) & 0xFF:02X}:{index & 0xFF:02X}"
    ip = f"10.{(index >> 16) & 0xFF}.{(index >> 8) & 0xFF}.{index & 0xFF or 1}"
    metrics = {
        "uptime": str(uptime_ms),
        "display_name": client_id,
        "model_name": profile.model_name,
        "model_id": profile.model_id,
        "part_number": f"{profile.model_id}-P{index % 4}",
        "serial_number": f"SN{index:08d}",
        "firmware_version": profile.firmware_version,
        "bios_version": "U-Boot 2023.04",
        "cpu_version": "ARMv7 Processor rev 4 (v7l)",
        "os": "Linux",
        "os_version": "5.15.92-kura",
        "os_arch": "arm",
        "jvm_name": "OpenJDK Client VM",
        "jvm_version": "17.0.9+9",
        "jvm_profile": "Java SE 17",
        "jvm_vendor": "Eclipse Adoptium",
        "kura_version": profile.kura_version,
        "application_framework": profile.application_framework,
        "application_framework_version": profile.application_framework_version,
        "osgi_framework": "Eclipse",
        "osgi_framework_version": "1.10.0",
        "connection_interface": f"eth0 ({mac})",
        "connection_ip": ip,
        "accept_encoding": "gzip" if profile.gzip and profile.encoding == "kura-protobuf" else "",
        "application_ids": ",".join(apps),
        "available_processors": "4",
        "total_memory": "458752",
        "payload_encoding": "SIMPLE_JSON" if profile.encoding == "simple-json" else "KURA_PROTOBUF",
    }
    payload = KuraPayload(
        metrics={name: _text(value) for name, value in metrics.items()}, timestamp=now_ms
    )
    payload.position = Position(
        latitude=45.07 + (index % 100) * 0.0007,
        longitude=7.69 + (index // 100 % 100) * 0.0007,
        altitude=239.0,
    )
    return payload


def disconnect_payload(client_id: str, uptime_ms: int, now_ms: int) -> KuraPayload:
    """The DC payload: `uptime` and `display_name`."""
    return KuraPayload(
        metrics={"uptime": _text(str(uptime_ms)), "display_name": _text(client_id)},
        timestamp=now_ms,
    )


def publish_lifecycle(device: SimDevice, account: str, kind: LifecycleKind, qos: int) -> None:
    """Publish a device's BIRTH, APPS (QoS 1, as Kura) or DC (QoS 0) on its link."""
    now = int(time.time() * 1000)
    uptime = int(device.uptime * 1000)
    if kind == "DC":
        payload = disconnect_payload(device.client_id, uptime, now)
    else:
        payload = birth_payload(
            device.client_id, device.index, device.profile, device.apps, uptime, now
        )
    topic = f"$EDC/{account}/{device.client_id}/MQTT/{kind}"
    device.publish(topic, device.encode(payload), qos)
