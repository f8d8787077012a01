"""campaign: one run of a campaign's fan-out per control message (postline.campaigns.fanout)."""

from postline.init_phase import init_phase

with init_phase():  # the cold start, without garbage collection (postline/init_phase.py)
    from aws_lambda_powertools import Logger
    from aws_lambda_powertools.utilities.typing import LambdaContext

    from postline.batch import partial_batch_response
    from postline.campaigns.fanout import CampaignContext, run_batch
    from postline.settings import get_settings
    from postline.tracing import lambda_tracer

    logger = Logger()
    tracer = lambda_tracer()  # X-Ray only where tracing is on
    campaign_context = CampaignContext(get_settings("campaign"))


@logger.inject_lambda_context
@tracer.capture_lambda_handler
def handler(event: dict, context: LambdaContext) -> dict:
    return partial_batch_response(
        event, context, lambda records: run_batch(records, campaign_context, context.get_remaining_time_in_millis)
    )
