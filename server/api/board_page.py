"""The dispatcher board page at `/board`: static HTML, CSS and JavaScript, no build step.

The files need no token, because a browser opens a page without an
Authorization header. They contain no data: the page requests a token from
the user and reads everything through the API with it.
"""

from __future__ import annotations

from importlib import resources

from litestar import Response, get

_STATIC = resources.files("server.board") / "static"
# The page loads only its own files and talks only to this server.
_PAGE_HEADERS = {
    "Content-Security-Policy": "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; "
    "img-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-cache",
}


def _static(name: str, media_type: str) -> Response[bytes]:
    return Response((_STATIC / name).read_bytes(), media_type=media_type, headers=_PAGE_HEADERS)


@get("/board", name="board.page", include_in_schema=False)
async def board_page() -> Response[bytes]:
    return _static("board.html", "text/html; charset=utf-8")


@get("/board/board.js", name="board.script", include_in_schema=False)
async def board_script() -> Response[bytes]:
    return _static("board.js", "text/javascript; charset=utf-8")


@get("/board/board.css", name="board.style", include_in_schema=False)
async def board_style() -> Response[bytes]:
    return _static("board.css", "text/css; charset=utf-8")


@get("/board/favicon.svg", name="board.icon", include_in_schema=False)
async def board_icon() -> Response[bytes]:
    """Serve the page's icon, so the browser's request for one does not end in a 404."""
    return _static("favicon.svg", "image/svg+xml")


ROUTES = [board_page, board_script, board_style, board_icon]
