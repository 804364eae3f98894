"""A DeviceList's devices are validated with the `Device` model, then held as lean records:
every value kept, what devices share held once, and every error still at its line."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from jobrunner.manifests import Device, ManifestSet
from jobrunner.manifests.devicelists import CHUNK

from .conftest import Write, messages

HEADER = "apiVersion: jobrunner/v1\nkind: DeviceList\nmetadata: {scope: other}\ndevices:\n"


def test_every_value_is_kept_and_what_is_the_same_is_held_once(
    write: Write, load: Callable[[], ManifestSet]
) -> None:
    write(
        "fleet.yaml",
        HEADER + "  - clientId: gw-10\n"
        "    displayName: Turin 10\n"
        "    timezone: Europe/Rome\n"
        "    tags: [line-1, turin]\n"
        "    labels: {site: turin, tier: edge}\n"
        "    vars: {ntpServer: 10.0.0.1, ports: [502, 503]}\n"
        "  - {clientId: gw-11, tags: [line-1, turin], labels: {site: turin, tier: edge}}\n"
        "  - {clientId: gw-12}\n",
    )

    result = load()

    assert not result.errors
    first, second, bare = (result.devices["other"][f"gw-1{n}"] for n in range(3))
    assert (first.client_id, first.display_name, first.timezone) == (
        "gw-10",
        "Turin 10",
        "Europe/Rome",
    )
    assert first.tags == ("line-1", "turin")
    assert dict(first.labels) == {"site": "turin", "tier": "edge"}
    assert dict(first.vars) == {"ntpServer": "10.0.0.1", "ports": [502, 503]}
    assert second.tags is first.tags, "the same tags, held once"
    assert second.labels is first.labels, "the same labels, held once"
    with pytest.raises(TypeError):
        second.labels["site"] = "milan"  # type: ignore[index]
    assert (bare.tags, dict(bare.labels), dict(bare.vars), bare.display_name) == ((), {}, {}, None)
    assert [first.line, second.line, bare.line] == [5, 11, 12]
    assert first.model() == Device.model_validate(
        {
            "clientId": "gw-10",
            "displayName": "Turin 10",
            "timezone": "Europe/Rome",
            "tags": ["line-1", "turin"],
            "labels": {"site": "turin", "tier": "edge"},
            "vars": {"ntpServer": "10.0.0.1", "ports": [502, 503]},
        }
    )


def test_errors_past_the_first_thousand_devices_are_at_their_lines(
    write: Write, load: Callable[[], ManifestSet]
) -> None:
    """Devices are validated a chunk at a time: an error's place counts from the list's start,
    errors of the document and of several devices are all told, and the list declares none."""
    count = CHUNK * 2 + 500
    bad_id, unknown_key = CHUNK + 700, 2 * CHUNK + 400
    entries = []
    for n in range(count):
        if n == bad_id:
            entries.append("  - {clientId: gw/bad}\n")
        elif n == unknown_key:
            entries.append(f"  - {{clientId: gw-{n}, tag: [x]}}\n")
        else:
            entries.append(f"  - {{clientId: gw-{n}, tags: [line-1]}}\n")
    path = write(
        "big.yaml",
        "apiVersion: jobrunner/v1\nkind: DeviceList\nmetadata: {scope: other, owner: me}\n"
        "devices:\n" + "".join(entries),
    )
    write("small.yaml", HEADER + "  - {clientId: gw-small}\n")

    result = load()

    found = messages(result, path)
    assert [line for line, _ in found] == [3, 5 + bad_id, 5 + unknown_key]
    assert found[0][1].startswith("unknown key 'owner'")
    assert "device client id" in found[1][1]
    assert found[2][1] == "unknown key 'tag'; did you mean 'tags'?"
    assert set(result.devices["other"]) == {"gw-small"}, "the broken list declares no device"
    assert [(r.file, r.kind) for r in result.rejected] == [(path, "DeviceList")]


@pytest.mark.parametrize(
    ("devices", "expected"),
    [
        ("devices: 5\n", (4, "expected a list, found the number 5")),
        ("", (1, "missing required key 'devices'")),
    ],
)
def test_devices_that_are_not_a_list_are_said_so(
    write: Write, load: Callable[[], ManifestSet], devices: str, expected: tuple[int, str]
) -> None:
    path = write(
        "odd.yaml",
        "apiVersion: jobrunner/v1\nkind: DeviceList\nmetadata: {scope: other}\n" + devices,
    )

    result = load()

    assert messages(result, path) == [expected]
    assert "other" not in result.devices
