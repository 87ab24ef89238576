"""Validate vmwatch's JSON output against docs/schemas/ (JSON Schema 2020-12).

    from schemas import validate
    validate("ps", out)            # docs/schemas/ps.json
    validate("api-vms", body)

Every schema file is loaded into one registry, so "$ref": "common.json#/$defs/..."
between files resolves offline. A mismatch raises AssertionError listing every
error with its JSON path.
"""

from __future__ import annotations

import functools
import json
from pathlib import Path
from typing import Any

from jsonschema import Draft202012Validator

try:                                    # jsonschema >= 4.18
    from referencing import Registry, Resource
except ImportError:                     # older: RefResolver with a store
    Registry = Resource = None

SCHEMA_DIR = Path(__file__).resolve().parents[2] / "docs" / "schemas"


@functools.lru_cache(maxsize=None)
def _registry() -> tuple[Any, dict[str, dict]]:
    schemas = {p.stem: json.loads(p.read_text()) for p in sorted(SCHEMA_DIR.glob("*.json"))}
    for s in schemas.values():
        Draft202012Validator.check_schema(s)
    if Registry is None:
        return {s["$id"]: s for s in schemas.values()}, schemas
    registry = Registry().with_resources(
        (s["$id"], Resource.from_contents(s)) for s in schemas.values())
    return registry, schemas


def _validator(registry: Any, schema: dict) -> Draft202012Validator:
    if Registry is None:
        from jsonschema import RefResolver
        return Draft202012Validator(schema, resolver=RefResolver(schema["$id"], schema, store=registry))
    return Draft202012Validator(schema, registry=registry)


def names() -> list[str]:
    return sorted(_registry()[1])


def validate(name: str, doc: Any) -> Any:
    """Check doc against docs/schemas/NAME.json; returns doc."""
    registry, schemas = _registry()
    v = _validator(registry, schemas[name])
    errors = sorted(v.iter_errors(doc), key=lambda e: list(e.absolute_path))
    if errors:
        lines = [f"  {'/'.join(map(str, e.absolute_path)) or '(root)'}: {e.message[:300]}" for e in errors[:20]]
        raise AssertionError(f"output does not match docs/schemas/{name}.json "
                             f"({len(errors)} errors):\n" + "\n".join(lines))
    return doc


def validate_lines(name: str, text: str) -> list:
    """Validate every non-empty line of JSON Lines output; returns the parsed lines."""
    docs = [json.loads(line) for line in text.splitlines() if line.strip()]
    for d in docs:
        validate(name, d)
    return docs
