"""An upstream that answers with what it received: to see what the gateway forwards.

python -m bookstore_testing.echo PORT     (or `echo_app` in-process)
"""

import sys

import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route


async def _echo(request: Request) -> JSONResponse:
    body = await request.body()
    return JSONResponse(
        {
            "method": request.method,
            "path": request.url.path,
            "query": request.url.query,
            "headers": dict(request.headers),
            "body": body.decode(),
            "port": request.scope["server"][1],
        },
        headers={
            "Connection": "close, x-upstream-private",
            "X-Upstream-Private": "secret",
            "X-Upstream-Public": "visible",
        },
    )


echo_app = Starlette(
    routes=[Route("/{path:path}", _echo, methods=["GET", "POST", "PUT", "DELETE", "PATCH"])]
)

if __name__ == "__main__":
    uvicorn.run(echo_app, host="127.0.0.1", port=int(sys.argv[1]), log_level="warning")
