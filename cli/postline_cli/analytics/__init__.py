"""The operator's view of the counters: ``postline stats`` (tables and JSON), ``postline report`` (one HTML file)
and the SVG charts they and the dashboard draw (docs/analytics.md)."""
