"""track_click: GET /c/{token} -> 302 to the link's signed target (404 for anything not signed by us). HEAD answers
the same without recording a click (scanners resolve links so); OPTIONS and other methods: postline.public_http."""

from postline.init_phase import init_phase

with init_phase():  # the cold start, without garbage collection (postline/init_phase.py)
    from aws_lambda_powertools import Logger
    from aws_lambda_powertools.event_handler import APIGatewayHttpResolver, Response
    from aws_lambda_powertools.utilities.typing import LambdaContext

    from postline.engagement import EngagementContext, follow_click, is_safe_target
    from postline.models import bind_tables
    from postline.pages import PUBLIC_HEADERS, not_found_page
    from postline.public_http import answer_other, headers_only, other_methods, page
    from postline.settings import get_settings
    from postline.tokens import CLICK
    from postline.tracing import lambda_tracer

    logger = Logger()
    tracer = lambda_tracer()  # X-Ray only where tracing is on
    settings = get_settings("track_click")
    bind_tables(settings)
    engagement = EngagementContext(settings)
    app = APIGatewayHttpResolver()


ALLOWED = ("GET", "HEAD")


def redirect(target: str | None) -> Response:
    """302 to the target, which sees no Referer (it would hold the token); 404 for none."""
    if target is None:
        return page(not_found_page(), 404)
    return Response(302, "text/plain", "", headers={**PUBLIC_HEADERS, "Location": target})


@app.get("/c/<token>")
def click(token: str) -> Response:
    return redirect(follow_click(engagement, token, app.current_event.headers.get("user-agent")))


@app.route("/c/<token>", method=["HEAD"])
def click_head(token: str) -> Response:
    claims = engagement.verify(token, CLICK)
    return headers_only(redirect(claims.target if claims and is_safe_target(claims.target) else None))


@app.route("/c/<token>", method=other_methods(ALLOWED))
def click_other(token: str) -> Response:
    return answer_other(app.current_event.http_method, ALLOWED)


@logger.inject_lambda_context
@tracer.capture_lambda_handler
def handler(event: dict, context: LambdaContext) -> dict:
    return app.resolve(event, context)
