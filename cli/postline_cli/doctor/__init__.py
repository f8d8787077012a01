"""``postline doctor``: checks that DNS and the SES account match what postline needs, and says how to fix what
does not (docs/doctor.md)."""
