"""track_open: GET /o/{token} -> a 1x1 transparent GIF, recording the open for a valid token. HEAD answers the same
headers without recording anything; OPTIONS and other methods: postline.public_http."""

from postline.init_phase import init_phase

with init_phase():  # the cold start, without garbage collection (postline/init_phase.py)
    from aws_lambda_powertools import Logger
    from aws_lambda_powertools.event_handler import APIGatewayHttpResolver, Response
    from aws_lambda_powertools.utilities.typing import LambdaContext

    from postline.engagement import EngagementContext, record_open
    from postline.models import bind_tables
    from postline.pages import PUBLIC_HEADERS
    from postline.public_http import answer_other, headers_only, other_methods
    from postline.settings import get_settings
    from postline.tracing import lambda_tracer

    logger = Logger()
    tracer = lambda_tracer()  # X-Ray only where tracing is on
    settings = get_settings("track_open")
    bind_tables(settings)
    engagement = EngagementContext(settings)
    app = APIGatewayHttpResolver()

PIXEL = bytes.fromhex("47494638396101000100800000000000ffffff21f90401000000002c00000000010001000002024401003b")


ALLOWED = ("GET", "HEAD")


def pixel() -> Response:
    return Response(
        200, "image/gif", PIXEL, headers={**PUBLIC_HEADERS, "Cache-Control": "no-store, no-cache, max-age=0, private"}
    )


@app.get("/o/<token>")
def open_pixel(token: str) -> Response:
    record_open(engagement, token, app.current_event.headers.get("user-agent"))
    return pixel()


@app.route("/o/<token>", method=["HEAD"])
def open_pixel_head(token: str) -> Response:  # a link checker, not an open
    return headers_only(pixel())


@app.route("/o/<token>", method=other_methods(ALLOWED))
def open_pixel_other(token: str) -> Response:
    return answer_other(app.current_event.http_method, ALLOWED)


@logger.inject_lambda_context
@tracer.capture_lambda_handler
def handler(event: dict, context: LambdaContext) -> dict:
    return app.resolve(event, context)
