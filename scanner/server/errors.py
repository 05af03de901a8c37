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


def too_many_attempts(retry_after):
    minutes = max(1, (int(retry_after) + 59) // 60)
    return ApiError(429, "login_locked", "too many failed logins; try again in %d minute(s) or ask an administrator "
                    "(xcscan server user unlock NAME)" % minutes, headers={"Retry-After": str(int(retry_after))})
