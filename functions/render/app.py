"""render: send messages from the inbound queues -> finished emails on the send queues."""

from postline.init_phase import init_phase

with init_phase():  # the cold start, without garbage collection (postline/init_phase.py)
    from aws_lambda_powertools import Logger
    from aws_lambda_powertools.utilities.typing import LambdaContext

    from postline.batch import partial_batch_response
    from postline.models import bind_tables
    from postline.render import RenderContext, render_batch
    from postline.settings import get_settings
    from postline.tracing import lambda_tracer

    logger = Logger()
    tracer = lambda_tracer()  # X-Ray only where tracing is on
    settings = get_settings("render")
    bind_tables(settings)
    render_context = RenderContext(settings)


@logger.inject_lambda_context
@tracer.capture_lambda_handler
def handler(event: dict, context: LambdaContext) -> dict:
    return partial_batch_response(event, context, lambda records: render_batch(records, render_context))
