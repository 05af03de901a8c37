"""Server-rendered pages (filled in below)."""
from __future__ import annotations

import html

from fastapi import APIRouter
from fastapi.responses import HTMLResponse

router = APIRouter()


def error_page(request, status, message, headers=None):
    return HTMLResponse("<!doctype html><title>%d</title><p>%s</p>" % (status, html.escape(message)),
                        status_code=status, headers=headers)
