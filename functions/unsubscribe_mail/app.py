"""unsubscribe_mail: emails sent to the List-Unsubscribe mailto address (SES receipt notifications through SNS and
SQS) -> unsubscribed, kept for an operator, or ignored (postline.inbound_mail)."""

from postline.init_phase import init_phase

with init_phase():  # the cold start, without garbage collection (postline/init_phase.py)
    from aws_lambda_powertools import Logger
    from aws_lambda_powertools.utilities.typing import LambdaContext

    from postline.batch import log_outcomes, partial_batch_response
    from postline.inbound_mail import UNSUBSCRIBED, UnsubscribeMailContext, handle_batch
    from postline.models import bind_tables
    from postline.settings import get_settings
    from postline.tracing import lambda_tracer

    logger = Logger()
    tracer = lambda_tracer()  # X-Ray only where tracing is on
    settings = get_settings("unsubscribe_mail")
    bind_tables(settings)
    mail_context = UnsubscribeMailContext(settings)


def _handle(records):
    result = handle_batch(records, mail_context)
    log_outcomes(logger, "unsubscribe_mail", result, UNSUBSCRIBED)  # SES's message ids and outcomes, no addresses
    return result


@logger.inject_lambda_context
@tracer.capture_lambda_handler
def handler(event: dict, context: LambdaContext) -> dict:
    return partial_batch_response(event, context, _handle)
