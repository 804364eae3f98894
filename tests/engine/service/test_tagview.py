"""The plan's table of every device's tags is a view over the declared devices (no copy of a
DeviceList's size): the same client ids, in the same order, with the same tags, as the table
it stands for; the registry's undeclared devices after them, with no tag."""

from __future__ import annotations

from pathlib import Path

import pytest

from jobrunner.engine.service.runner import device_tags
from jobrunner.engine.service.tagview import TagView
from jobrunner.manifests import load_manifests

DEVICES = """\
apiVersion: jobrunner/v1
kind: DeviceList
metadata: {scope: acme}
devices:
  - {clientId: gw-2, tags: [b]}
  - {clientId: gw-1, tags: [a, b]}
  - {clientId: gw-3}
"""


def test_the_table_of_the_declared_devices_is_a_view_over_them(tmp_path: Path) -> None:
    (tmp_path / "devices.yaml").write_text(DEVICES)
    manifests = load_manifests([tmp_path], default_scope="acme")
    assert not manifests.errors, manifests.diagnostics
    devices = device_tags(manifests)["acme"]
    assert isinstance(devices.tags, TagView)
    assert dict(devices.tags) == {"gw-2": ("b",), "gw-1": ("a", "b"), "gw-3": ()}
    assert devices.clients == ["gw-2", "gw-1", "gw-3"]
    assert devices.by_tag == {"b": ["gw-2", "gw-1"], "a": ["gw-1"]}
    assert devices.tags_of("gw-1") == ("a", "b")
    assert devices.tags_of("gw-9") == ()


class _Device:
    def __init__(self, *tags: str) -> None:
        self.tags = tags


def test_undeclared_devices_follow_the_declared_with_no_tag() -> None:
    view = TagView({"gw-1": _Device("a"), "gw-2": _Device()}, {"gw-7": None, "gw-5": None})
    assert list(view) == ["gw-1", "gw-2", "gw-7", "gw-5"]
    assert list(view.items()) == [("gw-1", ("a",)), ("gw-2", ()), ("gw-7", ()), ("gw-5", ())]
    assert len(view) == 4
    assert "gw-5" in view and "gw-9" not in view
    assert view["gw-7"] == () and view.get("gw-9") is None and view.get("gw-9", ()) == ()
    with pytest.raises(KeyError):
        view["gw-9"]
