"""Job definitions ported from the device cloud keep their XML inputs."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from jobrunner.errors import XmlFormError
from jobrunner.manifests.steps import AssetWrite, ConfigurationPut
from jobrunner.manifests.xmlforms import configurations_from_xml

CLOUD_CONFIGURATION = """<?xml version="1.0" encoding="UTF-8"?>
<configurations xmlns:ns0="http://www.osgi.org/xmlns/metatype/v1.2.0">
  <configuration>
    <id>org.eclipse.kura.demo.heater.Heater</id>
    <properties>
      <property name="temperature.increment" array="false" encrypted="false" type="Float">
        <value>0.25</value>
      </property>
      <property name="publish.rate" array="false" encrypted="false" type="Integer">
        <value>60</value>
      </property>
      <property name="publish.retain" array="false" encrypted="false" type="Boolean">
        <value>false</value>
      </property>
      <property name="targets" array="true" encrypted="false" type="String">
        <value>a</value><value>b</value>
      </property>
    </properties>
  </configuration>
</configurations>"""

KURA_CONFIGURATION = """<esf:configurations xmlns:esf="http://eurotech.com/esf/2.0"
    xmlns:ocd="http://www.osgi.org/xmlns/metatype/v1.2.0">
  <esf:configuration pid="org.eclipse.kura.demo.heater.Heater">
    <esf:properties>
      <esf:property name="publish.rate" array="false" encrypted="false" type="Integer">
        <esf:value>60</esf:value>
      </esf:property>
    </esf:properties>
  </esf:configuration>
</esf:configurations>"""

CLOUD_ASSETS = """<?xml version="1.0" encoding="UTF-8"?>
<deviceAssets>
  <deviceAsset>
    <name>assetName</name>
    <channels>
      <channel><valueType>binary</valueType><value>EGVzdCBzdHJpbmcgdmFsdWU=</value>
        <name>binaryTest</name></channel>
      <channel><valueType>integer</valueType><value>42</value><name>speed</name></channel>
    </channels>
  </deviceAsset>
</deviceAssets>"""


def test_cloud_configuration_xml_reads_into_typed_properties() -> None:
    step = ConfigurationPut.model_validate({"xml": CLOUD_CONFIGURATION})
    (component,) = step.configurations
    assert component.pid == "org.eclipse.kura.demo.heater.Heater"
    props = {name: (p.type, p.value) for name, p in component.properties.items()}  # type: ignore[union-attr]
    assert props == {
        "temperature.increment": ("Float", 0.25),
        "publish.rate": ("Integer", 60),
        "publish.retain": ("Boolean", False),
        "targets": ("String", ["a", "b"]),
    }
    assert step.xml == CLOUD_CONFIGURATION


def test_kura_esf_configuration_xml_reads_the_same_way() -> None:
    step = ConfigurationPut.model_validate({"xml": KURA_CONFIGURATION})
    assert step.configurations[0].pid == "org.eclipse.kura.demo.heater.Heater"


def test_cloud_asset_xml_reads_into_channels() -> None:
    step = AssetWrite.model_validate({"xml": CLOUD_ASSETS})
    channels = [(c.name, c.type, c.value) for c in step.assets[0].channels]
    assert channels == [
        ("binaryTest", "BYTE_ARRAY", "EGVzdCBzdHJpbmcgdmFsdWU="),
        ("speed", "INTEGER", 42),
    ]


@pytest.mark.parametrize(
    ("xml", "problem"),
    [
        ("<configurations><configuration>", "does not parse"),
        ("<settings/>", "expected <esf:configurations> or <configurations>"),
        ("<configurations/>", "holds no <configuration> element"),
        ("<configurations><configuration/></configurations>", "has no pid attribute nor <id>"),
        (
            '<configurations><configuration><id>p</id><properties><property name="x"'
            ' type="Integer"><value>ten</value></property></properties></configuration>'
            "</configurations>",
            "'ten' is not a Integer",
        ),
        (
            '<!DOCTYPE x [<!ENTITY a "aaaa">]><configurations>&a;</configurations>',
            "uses EntitiesForbidden; not accepted",
        ),
    ],
)
def test_bad_xml_is_refused_with_what_is_wrong(xml: str, problem: str) -> None:
    with pytest.raises(XmlFormError, match=problem):
        configurations_from_xml(xml)


def test_xml_and_structured_form_together_are_refused() -> None:
    with pytest.raises(ValidationError, match="give either 'configurations' or 'xml'"):
        ConfigurationPut.model_validate(
            {"xml": KURA_CONFIGURATION, "configurations": [{"pid": "a", "properties": {}}]}
        )
