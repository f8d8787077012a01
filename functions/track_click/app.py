"""track_click: GET /c/{token} -> 302 to the link's signed target (404 for anything not signed by us)."""
from postline.init_phase import init_phase

with init_phase():  # the cold start, without garbage collection (postline/init_phase.py)
    from aws_lambda_powertools import Logger
    from aws_lambda_powertools.event_handler import APIGatewayHttpResolver, Response
    from aws_lambda_powertools.utilities.typing import LambdaContext

    from postline.engagement import EngagementContext, follow_click
    from postline.models import bind_tables
    from postline.pages import not_found_page
    from postline.settings import get_settings
    from postline.tracing import lambda_tracer

    logger = Logger()
    tracer = lambda_tracer()  # X-Ray only where tracing is on
    settings = get_settings()
    bind_tables(settings)
    engagement = EngagementContext(settings)
    app = APIGatewayHttpResolver()


@app.get("/c/<token>")
def click(token: str) -> Response:
    target = follow_click(engagement, token, app.current_event.headers.get("user-agent"))
    if target is None:
        return Response(404, "text/html; charset=utf-8", not_found_page(), headers={"Cache-Control": "no-store"})
    return Response(302, "text/plain", "", headers={"Location": target, "Cache-Control": "no-store",
                                                     "Referrer-Policy": "no-referrer"})


@logger.inject_lambda_context
@tracer.capture_lambda_handler
def handler(event: dict, context: LambdaContext) -> dict:
    return app.resolve(event, context)
