"""The JSON Schema of profiles, for editors: completion, hover docs and errors while typing.

It is generated from the pydantic models, then widened to what the loader accepts before the
models see the data: shorthands (`ssl: require`, `preset: url`, a seed or role as a plain
string), `extends:`, and `${VAR}` references in place of numbers and booleans.
`profiles/envctl.schema.json` is a committed copy, kept equal by a unit test; regenerate it with
`envctl schema > profiles/envctl.schema.json` (or `python -m provisioner.schema`).
"""

from __future__ import annotations

import json
from typing import Any

from provisioner.presets import PRESETS
from provisioner.profile import SSL_MODES, Profile
from provisioner.profile_source import EXTENDS_KEY

SCHEMA_DIALECT = "https://json-schema.org/draft/2020-12/schema"
# The schema's identity for SchemaStore and editors: the URL SchemaStore serves its catalog's
# schemas under, which stays the same wherever the repository lives (its owner is not fixed yet).
SCHEMA_ID = "https://json.schemastore.org/envctl.json"
# A string holding a ${VAR} reference may stand where a number or boolean is expected.
_REFERENCE = {
    "type": "string",
    "pattern": r"\$\{[A-Za-z_][A-Za-z0-9_]*(:-[^}]*)?\}",
    "description": "filled in from the environment when the profile is loaded",
}


def profile_json_schema() -> dict[str, Any]:
    """The JSON Schema a profile file is written against (draft 2020-12)."""
    schema = Profile.model_json_schema()
    defs = schema["$defs"]
    _profile_keys(schema)
    postgres = defs["PostgresConfig"]["properties"]
    postgres["version"] = _also(postgres["version"], {"type": "number"})
    postgres["ssl"] = _also(
        postgres["ssl"], {"enum": list(SSL_MODES), "type": "string"}, {"type": "boolean"}
    )
    for key, model in (("roles", "RoleConfig"), ("seed", "SeedItem")):
        postgres[key]["items"] = {"anyOf": [{"$ref": f"#/$defs/{model}"}, {"type": "string"}]}
    preset = defs["EnvConfig"]["properties"]["preset"]
    names = {"enum": list(PRESETS), "type": "string"}
    preset.pop("type")
    preset.pop("items")
    preset["anyOf"] = [names, {"items": names, "type": "array"}]
    for model in (schema, *defs.values()):
        for name, field in model.get("properties", {}).items():
            model["properties"][name] = _allow_reference(field)
    return {"$schema": SCHEMA_DIALECT, "$id": SCHEMA_ID, **schema, "title": "envctl profile"}


def schema_text() -> str:
    """The schema as the committed file holds it (and `envctl schema` prints it)."""
    return json.dumps(profile_json_schema(), indent=2) + "\n"


def _profile_keys(schema: dict[str, Any]) -> None:
    properties = schema["properties"]
    for key in ("path", "sources"):  # set by the loader, never written in a file
        properties.pop(key)
    schema["required"] = [key for key in schema.get("required", []) if key != "name"]
    if not schema["required"]:
        schema.pop("required")  # the name defaults to the file's name
    properties[EXTENDS_KEY] = {
        "type": "string",
        "title": "Extends",
        "description": "A base profile (relative to this file) this one is merged over: "
        "mappings merge key by key, lists and values replace.",
    }


def _also(field: dict[str, Any], *alternatives: dict[str, Any]) -> dict[str, Any]:
    """`field` widened to accept `alternatives` too; title and default stay on the outside."""
    outer: dict[str, Any] = {
        key: field[key] for key in ("title", "default", "description") if key in field
    }
    inner = {key: value for key, value in field.items() if key not in outer}
    branches = inner["anyOf"] if list(inner) == ["anyOf"] else [inner]
    return {"anyOf": [*branches, *alternatives], **outer}


def _allow_reference(field: dict[str, Any]) -> dict[str, Any]:
    branches = field.get("anyOf", [field])
    types = {branch.get("type") for branch in branches}
    plain_string = any(
        branch.get("type") == "string" and not ({"enum", "const", "pattern"} & set(branch))
        for branch in branches
    )
    if plain_string or not types & {"integer", "number", "boolean"}:
        return field
    return _also(field, _REFERENCE)


if __name__ == "__main__":
    print(schema_text(), end="")
