"""unsubscribe: GET /u/{token} shows a confirmation page (never unsubscribes); POST /u/{token} unsubscribes
(RFC 8058 one-click, or the page's button) or resubscribes (the page's undo button); a body past 8 KB is refused.
HEAD answers as GET; OPTIONS and other methods: postline.public_http."""

from postline.init_phase import init_phase

with init_phase():  # the cold start, without garbage collection (postline/init_phase.py)
    from aws_lambda_powertools import Logger
    from aws_lambda_powertools.event_handler import APIGatewayHttpResolver, Response
    from aws_lambda_powertools.utilities.typing import LambdaContext

    from postline.engagement import EngagementContext, requested_action, resubscribe, subscription, unsubscribe
    from postline.models import bind_tables
    from postline.pages import confirm_page, not_found_page, resubscribed_page, unsubscribed_page
    from postline.public_http import answer_other, body_text, headers_only, other_methods, page, too_large
    from postline.settings import get_settings
    from postline.tracing import lambda_tracer

    logger = Logger()
    tracer = lambda_tracer()  # X-Ray only where tracing is on
    settings = get_settings("unsubscribe")
    bind_tables(settings)
    engagement = EngagementContext(settings)
    app = APIGatewayHttpResolver()

ALLOWED = ("GET", "HEAD", "POST")


@app.get("/u/<token>")
def confirm(token: str) -> Response:
    found = subscription(engagement, token)
    if found is None:
        return page(not_found_page(), 404)
    render = unsubscribed_page if found.suppressed else confirm_page
    return page(render(found.address, found.message.campaign))


@app.route("/u/<token>", method=["HEAD"])
def confirm_head(token: str) -> Response:
    return headers_only(confirm(token))


@app.route("/u/<token>", method=other_methods(ALLOWED))
def other(token: str) -> Response:
    return answer_other(app.current_event.http_method, ALLOWED)


@app.post("/u/<token>")
def change(token: str) -> Response:
    event = app.current_event
    refused = too_large(event.headers, event.body)
    if refused is not None:
        return refused
    action = requested_action(body_text(event.body, event.is_base64_encoded), event.headers.get("content-type", ""))
    if action == "resubscribe":
        found = resubscribe(engagement, token)
        if found is None:
            return page(not_found_page(), 404)
        render = unsubscribed_page if found.suppressed else resubscribed_page
        return page(render(found.address, found.message.campaign))
    found = unsubscribe(engagement, token, how=action)
    if found is None:
        return page(not_found_page(), 404)
    return page(unsubscribed_page(found.address, found.message.campaign))


@logger.inject_lambda_context
@tracer.capture_lambda_handler
def handler(event: dict, context: LambdaContext) -> dict:
    return app.resolve(event, context)
