"""The OpenAPI document: FastAPI's own, plus the answers that every route shares.

Some statuses come from machinery FastAPI does not see when it documents a route: the body-size middleware
(413), the JSON error handlers (400 for a body that is not JSON or is empty, 415 for another content type),
and the database error handler (503). They are added here, in one place, to every operation they apply to.
"""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi

ERROR_BODY_REF = {"$ref": "#/components/schemas/ErrorBody"}
ANY_ROUTE = {503: "The database is busy or unreachable: nothing was saved, retry the request."}
WITH_BODY = {413: "The request body is larger than the server accepts."}
WITH_JSON_BODY = {
    400: "The body is not valid JSON, or it is empty.",
    415: "The body is not application/json.",
}
WITH_INPUT = {422: "A parameter or a field of the body is not valid."}
WRITES = {409: "Another request changed or deleted the resource at the same time: nothing was saved."}
HTTP_METHODS = ("get", "put", "post", "delete", "patch")


def _add(operation: dict[str, Any], answers: dict[int, str]) -> None:
    responses = operation.setdefault("responses", {})
    for status, description in answers.items():
        responses.setdefault(
            str(status), {"description": description, "content": {"application/json": {"schema": ERROR_BODY_REF}}}
        )


def complete_document(document: dict[str, Any]) -> dict[str, Any]:
    """`document` with the shared answers added to each operation that can give them."""
    for path_item in document.get("paths", {}).values():
        for method in HTTP_METHODS:
            operation = path_item.get(method)
            if operation is None:
                continue
            _add(operation, ANY_ROUTE)
            if method != "get":
                _add(operation, WRITES)
            body = operation.get("requestBody")
            if body is not None:
                _add(operation, WITH_BODY)
                if "application/json" in body.get("content", {}):
                    _add(operation, WITH_JSON_BODY)
            if body is not None or operation.get("parameters"):
                _add(operation, WITH_INPUT)
    return document


def install_openapi(app: FastAPI) -> None:
    """Serve the completed document at /openapi.json (built once, on first request, as FastAPI does)."""

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            document = get_openapi(
                title=app.title,
                version=app.version,
                summary=app.summary,
                routes=app.routes,
            )
            app.openapi_schema = complete_document(document)
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]
