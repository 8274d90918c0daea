"""docs/reference/http.md: every route of the HTTP API from its OpenAPI schema, with the key it needs."""

from __future__ import annotations

import ast
import inspect
import json
import tempfile
import textwrap
from collections.abc import Callable, Iterator, Sequence
from typing import Any

from fastapi import FastAPI
from fastapi.routing import APIRoute

from kawa._docs._md import GENERATED, code, table

METHODS = ("get", "post", "put", "patch", "delete")

# What the route's code calls to check the caller's key (kawa.api.auth), most demanding first.
KEY_RULES = (
    ("admin_access", "admin key"),
    ("read_access", "read key (or admin key)"),
    ("Role.WRITE", "write key (or admin key)"),
)
NO_KEY = "none"


def live_app() -> FastAPI:
    """kawa's FastAPI application over an empty state folder (nothing is opened until a request)."""
    from kawa.api.app import create_app
    from kawa.config import Config
    from kawa.runtime import Runtime

    folder = tempfile.mkdtemp(prefix="kawa-docs-")
    return create_app(Runtime(Config(root=folder)))


def operations(schema: dict[str, Any]) -> Iterator[tuple[str, str, dict[str, Any]]]:
    """(METHOD, path, operation) for every operation of an OpenAPI schema, in the schema's order."""
    for path, item in schema.get("paths", {}).items():
        for method in METHODS:
            if method in item:
                yield method.upper(), path, item[method]


def api_routes(routes: list[Any]) -> Iterator[APIRoute]:
    """Every APIRoute under `routes`, also inside included routers that FastAPI keeps unflattened."""
    for route in routes:
        if isinstance(route, APIRoute):
            yield route
        inner = getattr(route, "original_router", None)
        if inner is not None:
            yield from api_routes(inner.routes)


def key_rule(endpoint: Callable[..., Any], dependencies: Sequence[Callable[..., Any]] = ()) -> str:
    """Which key a route needs, read from the code it runs (its own module's helpers included)."""
    text = _source_closure(endpoint) + " ".join(getattr(d, "__name__", "") for d in dependencies)
    for marker, rule in KEY_RULES:
        if marker in text:
            return rule
    return NO_KEY


def _source_closure(function: Callable[..., Any], seen: set[Callable[..., Any]] | None = None) -> str:
    """The source of `function` and of the functions of its module that it calls, transitively."""
    seen = set() if seen is None else seen
    seen.add(function)
    try:
        source = textwrap.dedent(inspect.getsource(function))
    except (OSError, TypeError):
        return ""
    texts = [source]
    module_globals = getattr(function, "__globals__", {})
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Name):
            callee = module_globals.get(node.func.id)
            if inspect.isfunction(callee) and callee.__module__ == function.__module__ and callee not in seen:
                texts.append(_source_closure(callee, seen))
    return "\n".join(texts)


def route_keys(app: FastAPI) -> dict[tuple[str, str], str]:
    """(METHOD, path) -> the key rule, for every route of `app`'s OpenAPI schema (the web UI's pages, which
    log in with a cookie, are not in it)."""
    documented = {(m, p) for m, p, _ in operations(app.openapi())}
    keys = {}
    for route in api_routes(app.routes):
        dependencies = [d.call for d in route.dependant.dependencies if d.call is not None]
        rule = key_rule(route.endpoint, dependencies)
        for method in route.methods or ():
            if (method, route.path_format) in documented:
                keys[method, route.path_format] = rule
    return keys


def http_markdown(app: FastAPI | None = None) -> str:
    """The HTTP reference page for `app` (kawa's own by default)."""
    app = app or live_app()
    schema = app.openapi()
    keys = route_keys(app)
    ops = list(operations(schema))
    lines = [
        GENERATED,
        "",
        "# HTTP API",
        "",
        f"kawa {schema['info'].get('version', '')} answers on `http://HOST:8642` (`kawa serve`). "
        "This page is generated from its OpenAPI schema, which a running server also serves at "
        "`/openapi.json` (interactive at `/docs`).",
        "",
        "Keys go in `Authorization: Bearer KEY` (or as the user name of HTTP Basic). Each project has three: "
        "the **write** key may only send events (it ships inside web pages), the **read** key reads "
        "predictions, models and runs, the **admin** key does everything else. No key of one project sees "
        "another project's data. Without a valid key a route answers 401; with a key of the wrong role, 403. "
        'Errors come back as `{"error": "what is wrong and what to do"}`.',
        "",
        "## Routes",
        "",
        *table(
            ["method", "path", "key", "what it does"],
            [(m, code(p), keys.get((m, p), NO_KEY), op.get("summary", "")) for m, p, op in ops],
        ),
    ]
    by_tag: dict[str, list[tuple[str, str, dict[str, Any]]]] = {}
    for method, path, op in ops:
        by_tag.setdefault((op.get("tags") or ["other"])[0], []).append((method, path, op))
    for tag, tagged in by_tag.items():
        lines += [f"## {tag.capitalize()}", ""]
        for method, path, op in tagged:
            lines += _operation(method, path, op, keys.get((method, path), NO_KEY), schema)
    return "\n".join(lines).rstrip() + "\n"


def _operation(method: str, path: str, op: dict[str, Any], key: str, schema: dict[str, Any]) -> list[str]:
    lines = [f"### {method} {path}", "", op.get("summary", ""), ""]
    if op.get("description"):
        lines += [op["description"].strip(), ""]
    lines += [f"**Key**: {key}", ""]
    params = op.get("parameters", [])
    if params:
        lines += ["**Parameters**", ""]
        lines += table(
            ["name", "in", "type", "required", "default", "description"],
            [
                (
                    code(p["name"]),
                    p.get("in", ""),
                    _type(p.get("schema", {}), schema),
                    "yes" if p.get("required") else "no",
                    _default(p.get("schema", {})),
                    p.get("description", p.get("schema", {}).get("description", "")),
                )
                for p in params
            ],
        )
    body = op.get("requestBody")
    if body:
        lines += _body(body, schema)
    responses = [
        (status, r.get("description", ""))
        for status, r in op.get("responses", {}).items()
        if status != "422" and r.get("description") not in (None, "", "Successful Response")
    ]
    if responses:
        lines += ["**Responses**", "", *table(["status", "when"], responses)]
    return lines


def _body(body: dict[str, Any], schema: dict[str, Any]) -> list[str]:
    lines = ["**Request body**" + (" (required)" if body.get("required") else ""), ""]
    for media, content in body.get("content", {}).items():
        shape = content.get("schema", {})
        fields = _resolve(shape, schema).get("properties")
        lines += [f"- `{media}`: {_type(shape, schema)}"]
        if fields:
            required = set(_resolve(shape, schema).get("required", []))
            lines += [
                "",
                *table(
                    ["field", "type", "required", "default", "description"],
                    [
                        (
                            code(name),
                            _type(field, schema),
                            "yes" if name in required else "no",
                            _default(field),
                            field.get("description", ""),
                        )
                        for name, field in fields.items()
                    ],
                ),
            ]
        if "example" in content:
            lines += ["", "```json", json.dumps(content["example"], indent=2), "```"]
    return [*lines, ""]


def _resolve(shape: dict[str, Any], schema: dict[str, Any]) -> dict[str, Any]:
    ref = shape.get("$ref")
    if not ref:
        return shape
    found: Any = schema
    for part in ref.removeprefix("#/").split("/"):
        found = found.get(part, {})
    return found if isinstance(found, dict) else {}


def _type(shape: dict[str, Any], schema: dict[str, Any]) -> str:
    """A short name for a JSON Schema type: `integer`, `string or null`, `list of object`, `SQLRequest`."""
    if "$ref" in shape:
        return str(shape["$ref"].rsplit("/", 1)[-1])
    for combined in ("anyOf", "oneOf"):
        if combined in shape:
            return " or ".join(dict.fromkeys(_type(s, schema) for s in shape[combined]))
    kind = shape.get("type")
    if kind == "array":
        return f"list of {_type(shape.get('items', {}), schema)}" if shape.get("items") else "list"
    if isinstance(kind, list):
        return " or ".join(kind)
    return str(kind) if kind else "any"


def _default(shape: dict[str, Any]) -> str:
    return code(json.dumps(shape["default"])) if "default" in shape else ""
