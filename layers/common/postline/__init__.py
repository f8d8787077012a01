"""postline: the library every function shares (contract, models, rendering, suppression, tokens, SES transport)."""
