"""Campaigns: a template sent to an audience from S3, paced and within an optional daily window.

See docs/campaigns-design.md. Nothing in this package reads os.environ.
"""
