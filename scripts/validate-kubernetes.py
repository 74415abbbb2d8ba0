#!/usr/bin/env python3
"""Validates every manifest under deploy/kubernetes/ against Kubernetes's JSON schemas, offline.

Built-in kinds (StatefulSet, Service, ConfigMap, PodDisruptionBudget) are checked with the
`kubernetes-validate` package (PyPI), which ships the schemas of every Kubernetes release;
custom resources (the Prometheus Operator's ServiceMonitor) against the CRD schema vendored in
deploy/kubernetes/schemas/. Both strictly: a field the schema does not know is an error, as
with `kubeconform -strict`. Exit 1 naming every error.

Usage: scripts/validate-kubernetes.py [--kubernetes-version=1.30.0] [DIR]
(scripts/test runs it from a virtualenv with kubernetes-validate installed.)
"""

import argparse
import copy
import json
import pathlib
import sys

import jsonschema
import kubernetes_validate
import yaml

ROOT = pathlib.Path(__file__).resolve().parent.parent
CUSTOM = {
    ("monitoring.coreos.com/v1", "ServiceMonitor"): "servicemonitor-monitoring.coreos.com-v1.json",
}


def strict(schema):
    """Closes every object schema that lists its properties, as kubeconform -strict does."""
    schema = copy.deepcopy(schema)

    def walk(node):
        if isinstance(node, dict):
            if (
                "properties" in node
                and "additionalProperties" not in node
                and not node.get("x-kubernetes-preserve-unknown-fields")
            ):
                node["additionalProperties"] = False
            for v in node.values():
                walk(v)
        elif isinstance(node, list):
            for v in node:
                walk(v)

    walk(schema)
    return schema


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--kubernetes-version", default="1.30.0")
    parser.add_argument("dir", nargs="?", default=str(ROOT / "deploy" / "kubernetes"))
    args = parser.parse_args()
    base = pathlib.Path(args.dir)
    errors = []
    checked = 0
    for path in sorted(base.rglob("*.yaml")):
        with open(path) as f:
            docs = [d for d in yaml.safe_load_all(f) if d is not None]
        for doc in docs:
            kind = doc.get("kind")
            api = doc.get("apiVersion")
            name = f"{path.relative_to(base)}: {kind}/{doc.get('metadata', {}).get('name')}"
            custom = CUSTOM.get((api, kind))
            if custom:
                with open(base / "schemas" / custom) as f:
                    schema = strict(json.load(f))
                spec = {k: v for k, v in doc.items()}
                validator = jsonschema.Draft7Validator(schema)
                found = sorted(validator.iter_errors(spec), key=lambda e: list(e.path))
                for e in found:
                    where = ".".join(str(p) for p in e.path) or "(root)"
                    errors.append(f"{name}: {where}: {e.message}")
                meta = doc.get("metadata") or {}
                if not meta.get("name"):
                    errors.append(f"{name}: metadata.name is required")
            else:
                try:
                    kubernetes_validate.validate(doc, args.kubernetes_version, strict=True)
                except kubernetes_validate.utils.ValidationError as e:
                    where = ".".join(str(p) for p in e.path) or "(root)"
                    errors.append(f"{name}: {where}: {e.message}")
                except (
                    kubernetes_validate.utils.SchemaNotFoundError,
                    kubernetes_validate.utils.InvalidSchemaError,
                ) as e:
                    errors.append(f"{name}: no schema: {e}")
            checked += 1
    for e in errors:
        print(e, file=sys.stderr)
    if errors or checked == 0:
        print(f"FAILED: {len(errors)} errors in {checked} manifests", file=sys.stderr)
        return 1
    print(f"SUCCESS: {checked} manifests valid against Kubernetes {args.kubernetes_version} (strict)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
