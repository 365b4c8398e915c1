"""Firefly-style error bodies for every failure: raised API errors, validation, routing and crashes."""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from sqlalchemy.exc import OperationalError
from sqlalchemy.orm.exc import StaleDataError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.routing import Match

from ember.custom_models.lifecycle import (
    AccessDenied,
    ImageNotFound,
    InvalidInput,
    LifecycleConflict,
    LifecycleError,
    ModelNotFound,
    ShareNotFound,
    WeightsUnavailable,
)
from ember.lora_formats import InvalidLoraFile
from ember.validation import validation_entry

log = logging.getLogger("ember.api")
ERROR_CODES_BY_STATUS = {
    400: "bad_request",
    401: "unauthorized",
    403: "access_error",
    404: "not_found",
    405: "method_not_allowed",
    408: "timeout_error",
    409: "conflict",
    413: "request_too_large",
    415: "invalid_content_type",
    422: "validation_error",
    429: "rate_limited",
    500: "runtime_error",
    503: "service_unavailable",
}
MESSAGES_BY_STATUS = {
    404: "The requested resource was not found.",
    405: "The method is not allowed for this resource.",
    413: "The request body is too large.",
}


class ApiError(Exception):
    """An error answered as `{"error_code", "message"}` with its status and headers."""

    def __init__(
        self,
        status_code: int,
        error_code: str,
        message: str,
        headers: Mapping[str, str] | None = None,
        validation_errors: Sequence[Mapping[str, Any]] | None = None,
    ) -> None:
        super().__init__(message)
        self.status_code = status_code
        self.error_code = error_code
        self.message = message
        self.headers = dict(headers or {})
        self.validation_errors = list(validation_errors or [])

    def response(self) -> JSONResponse:
        body: dict[str, Any] = {"error_code": self.error_code, "message": self.message}
        if self.validation_errors:
            body["validation_errors"] = self.validation_errors
        return JSONResponse(body, status_code=self.status_code, headers=self.headers)


class BodyTooLarge(StarletteHTTPException):
    """Raised while a request body streams in past the configured limit (an HTTPException so that
    FastAPI's body parsing passes it through unchanged)."""

    def __init__(self, limit: int) -> None:
        super().__init__(413, f"The request body is larger than {limit} bytes.")


def validation_error(loc: Sequence[str | int], msg: str, type_: str, ctx: Mapping[str, Any] | None = None) -> ApiError:
    """A 422 for one bad field, shaped like the framework's own validation errors."""
    entry = validation_entry(loc, msg, type_, ctx)
    return ApiError(422, "validation_error", "Request validation failed.", validation_errors=[entry])


def _plain(value: Any) -> Any:
    if isinstance(value, str | int | float | bool) or value is None:
        return value
    if isinstance(value, list | tuple):
        return [_plain(item) for item in value]
    return str(value)


def wire_validation_errors(errors: Sequence[Any]) -> list[dict[str, Any]]:
    """Framework validation errors as `{"loc", "msg", "type", "ctx"?}` (no echo of the input)."""
    shaped: list[dict[str, Any]] = []
    for error in errors:
        ctx = error.get("ctx")
        shaped.append(
            validation_entry(
                [_plain(part) for part in error.get("loc", ())],
                str(error.get("msg", "")),
                str(error.get("type", "")),
                {str(key): _plain(value) for key, value in ctx.items()} if ctx else None,
            )
        )
    return shaped


async def _on_api_error(_request: Request, error: Exception) -> JSONResponse:
    assert isinstance(error, ApiError)
    return error.response()


async def _on_validation_error(_request: Request, error: Exception) -> JSONResponse:
    assert isinstance(error, RequestValidationError)
    errors = list(error.errors())
    if any(item.get("type") == "json_invalid" for item in errors):
        return ApiError(400, "bad_request", "The request body is not valid JSON.").response()
    if any(tuple(item.get("loc", ())) == ("body",) and item.get("type") == "missing" for item in errors):
        return ApiError(400, "empty_input_body", "The request body is empty.").response()
    return ApiError(
        422, "validation_error", "Request validation failed.", validation_errors=wire_validation_errors(errors)
    ).response()


ROUTED_METHODS = ("DELETE", "GET", "PATCH", "POST", "PUT")


def _allowed_methods(request: Request) -> str:
    """Every method some route serves at this path (the router's own 405 names only the first route's): each
    method is tried against the routes as the router itself would match it."""
    routes = request.app.router.routes
    allowed = [
        method
        for method in ROUTED_METHODS
        if any(route.matches({**request.scope, "method": method})[0] is Match.FULL for route in routes)
    ]
    return ", ".join(allowed)


async def _on_http_exception(request: Request, error: Exception) -> JSONResponse:
    assert isinstance(error, StarletteHTTPException)
    status = error.status_code
    if status == 405:
        others = {name: value for name, value in (error.headers or {}).items() if name.lower() != "allow"}
        error.headers = {**others, "allow": _allowed_methods(request)}
    code = ERROR_CODES_BY_STATUS.get(status, "bad_request" if status < 500 else "runtime_error")
    default_message = MESSAGES_BY_STATUS.get(status, "The request failed.")
    message = error.detail if isinstance(error.detail, str) and error.detail else default_message
    if status in MESSAGES_BY_STATUS and message in {"Not Found", "Method Not Allowed"}:
        message = MESSAGES_BY_STATUS[status]
    return ApiError(status, code, message, headers=error.headers).response()


DATABASE_RETRY_AFTER_S = 1


def database_unavailable() -> ApiError:
    """What a client sees when the database refuses a read or a write (locked, unreachable): nothing of the
    request was saved, and retrying is safe."""
    return ApiError(
        503,
        "service_unavailable",
        "The database is busy or unreachable; nothing was saved. Retry the request.",
        headers={"retry-after": str(DATABASE_RETRY_AFTER_S)},
    )


async def _on_database_error(_request: Request, error: Exception) -> JSONResponse:
    log.warning("database error answered as 503: %s", error)
    return database_unavailable().response()


def concurrent_change() -> ApiError:
    """What a client sees when another request deleted or changed the rows this one was writing: nothing of it
    was saved; reading the resource again shows what is there now."""
    return ApiError(
        409, "conflict", "Another request changed or deleted this resource at the same time; nothing was saved."
    )


async def _on_concurrent_change(_request: Request, error: Exception) -> JSONResponse:
    log.info("concurrent change answered as 409: %s", error)
    return concurrent_change().response()


def internal_error() -> ApiError:
    """What a client sees of an unexpected exception: no detail (the log has it, under the request id)."""
    return ApiError(500, "runtime_error", "An internal error occurred.")


def lifecycle_error(error: Exception) -> ApiError | None:
    """The wire answer to an error of the custom-model package (or of a weights conversion); None for others."""
    if isinstance(error, ModelNotFound):
        return ApiError(404, "not_found", "The custom model is unknown.")
    if isinstance(error, ImageNotFound):
        return ApiError(404, "not_found", "The custom model has no training image with that id.")
    if isinstance(error, ShareNotFound):
        return ApiError(404, "not_found", "The custom model is not shared with that principal.")
    if isinstance(error, WeightsUnavailable):
        return ApiError(404, "weights_not_found", str(error))
    if isinstance(error, AccessDenied):
        return ApiError(403, "access_error", str(error))
    if isinstance(error, LifecycleConflict):
        return ApiError(409, error.code, error.message)
    if isinstance(error, InvalidLoraFile):
        return ApiError(409, "weights_not_convertible", f"The weights cannot be converted: {error}.")
    if isinstance(error, InvalidInput):
        return ApiError(422, "validation_error", "Request validation failed.", validation_errors=wire_problems(error))
    return None


def wire_problems(error: InvalidInput) -> list[dict[str, Any]]:
    """The custom-model package's problems as validation errors: a request's fields are located in the body
    (`["body", "conceptId"]`), a model's fields (training rules) by their names alone (`["conceptId"]`)."""
    prefix: list[str | int] = ["body"] if error.in_request else []
    return [validation_entry([*prefix, *item.field], item.message, item.code) for item in error.problems]


async def _on_lifecycle_error(_request: Request, error: Exception) -> JSONResponse:
    translated = lifecycle_error(error)
    if translated is None:
        raise error
    return translated.response()


def install_error_handlers(app: FastAPI) -> None:
    app.add_exception_handler(ApiError, _on_api_error)
    app.add_exception_handler(RequestValidationError, _on_validation_error)
    app.add_exception_handler(StarletteHTTPException, _on_http_exception)
    app.add_exception_handler(OperationalError, _on_database_error)
    app.add_exception_handler(StaleDataError, _on_concurrent_change)
    app.add_exception_handler(LifecycleError, _on_lifecycle_error)
    app.add_exception_handler(InvalidLoraFile, _on_lifecycle_error)
