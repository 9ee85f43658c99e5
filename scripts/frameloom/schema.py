"""The configuration files' JSON schemas: validation with defaults, one-line errors.

Each file is checked against its schema in ``config/schemas/``, missing keys take
the schema defaults, and the first problem becomes a one-line ``ConfigError``
that names the file, the key and the rule that was broken.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import yaml
from jsonschema import Draft7Validator, validators

SCHEMA_DIR = Path(__file__).resolve().parents[2] / "config" / "schemas"


class ConfigError(ValueError):
    """A configuration value breaks a rule; the message is one line."""


def _with_defaults(validator_class):
    """A validator that also fills in each property's ``default`` (the jsonschema FAQ recipe)."""
    check_properties = validator_class.VALIDATORS["properties"]

    def fill_defaults(validator, properties, instance, schema):
        if isinstance(instance, dict):
            for name, subschema in properties.items():
                if "default" in subschema and name not in instance:
                    instance[name] = json.loads(json.dumps(subschema["default"]))
        yield from check_properties(validator, properties, instance, schema)

    return validators.extend(validator_class, {"properties": fill_defaults})


_DefaultingValidator = _with_defaults(Draft7Validator)


def _describe(error) -> str:
    """Turn a jsonschema error into 'key: rule (got value)'."""
    key = ".".join(str(part) for part in error.absolute_path) or "(top level)"
    got = json.dumps(error.instance, default=str)
    if len(got) > 60:
        got = got[:57] + "..."
    validator = error.validator
    if validator == "additionalProperties":
        allowed = ", ".join(sorted(error.schema.get("properties", {})))
        unknown = sorted(set(error.instance) - set(error.schema.get("properties", {})))
        where = f"{key}." if error.absolute_path else ""
        return f"{where}{unknown[0]}: unknown key (allowed: {allowed})"
    if validator in ("minimum", "maximum"):
        bound = "at least" if validator == "minimum" else "at most"
        return f"{key}: must be {bound} {error.validator_value} (got {got})"
    if validator == "enum":
        return f"{key}: must be one of {', '.join(map(str, error.validator_value))} (got {got})"
    if validator == "type":
        return f"{key}: must be of type {error.validator_value} (got {got})"
    if validator == "pattern":
        return f"{key}: must match {error.validator_value} (got {got})"
    return f"{key}: {error.message}"


def load_schema(name: str) -> dict:
    with open(SCHEMA_DIR / f"{name}.schema.yaml", encoding="utf-8") as handle:
        return yaml.safe_load(handle)


def validate(document: Any, schema_name: str, source: str) -> dict:
    """Fill defaults into ``document`` and validate it; ``source`` names the file in errors."""
    if document is None:
        document = {}
    if not isinstance(document, dict):
        raise ConfigError(f"{source}: (top level): must be a mapping (got {type(document).__name__})")
    validator = _DefaultingValidator(load_schema(schema_name))
    errors = sorted(validator.iter_errors(document), key=lambda e: list(map(str, e.absolute_path)))
    if errors:
        raise ConfigError(f"{source}: {_describe(errors[0])}")
    return document


def read_yaml(path: Path, source: str) -> Any:
    if not path.is_file():
        raise ConfigError(f"{source}: file not found: {path}")
    try:
        with open(path, encoding="utf-8") as handle:
            return yaml.safe_load(handle)
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        where = f" at line {mark.line + 1}" if mark else ""
        raise ConfigError(f"{source}: not valid YAML{where}") from None
