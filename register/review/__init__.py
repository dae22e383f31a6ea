"""Improvement review: counts, rates and SPC charts of duplicated actions, de-identified."""
