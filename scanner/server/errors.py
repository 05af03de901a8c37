"""API errors: every refusal is a 4xx with {"error": code, "message": text}."""
from __future__ import annotations


class ApiError(Exception):
    def __init__(self, status, code, message, headers=None):
        Exception.__init__(self, message)
        self.status = status
        self.code = code
        self.message = message
        self.headers = headers


def bad_request(code, message):
    return ApiError(400, code, message)


def unauthorized(code, message):
    return ApiError(401, code, message)


def forbidden(code, message):
    return ApiError(403, code, message)


def not_found(message="not found"):
    return ApiError(404, "not_found", message)
