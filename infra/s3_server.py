"""The S3 API endpoint of tidelake's tests: moto's server, with conditional writes made atomic.

moto checks `If-None-Match` / `If-Match` and then writes, in two steps that its request threads can
interleave: two writers racing for the same Delta log entry could both be told they won, which real
S3 never does. Here conditional requests run one at a time; all other requests stay concurrent.

Usage: python s3_server.py HOST PORT
"""

import sys
import threading

from moto.moto_server.werkzeug_app import DomainDispatcherApplication, MotoRequestHandler, create_backend_app
from werkzeug.serving import run_simple


def main(host: str, port: int) -> None:
    moto = DomainDispatcherApplication(create_backend_app)
    conditional = threading.Lock()

    def app(environ, start_response):
        if environ.get("HTTP_IF_NONE_MATCH") or environ.get("HTTP_IF_MATCH"):
            with conditional:
                return list(moto(environ, start_response))
        return moto(environ, start_response)

    run_simple(host, port, app, threaded=True, request_handler=MotoRequestHandler)


if __name__ == "__main__":
    main(sys.argv[1], int(sys.argv[2]))
