"""The policy's answers for the improvement review and for patients' reports of duplication."""

from __future__ import annotations

import pytest

from auth.policy import (
    Refusal,
    ReviewGrant,
    ReviewUse,
    may_report_duplicate,
    review_access,
)
from auth.principal import OPERATOR
from tests.auth.test_policy import who


@pytest.mark.parametrize("use", list(ReviewUse))
def test_only_reviewers_and_the_operator_use_the_review(use):
    for principal in (who("reviewer", "user/*.rs"), OPERATOR):
        grant = review_access(principal, use)
        assert isinstance(grant, ReviewGrant) and grant.deidentified
    for role, scope in (
        ("clinician", "user/*.cruds"),
        ("system", "system/*.cruds"),
        ("patient", "patient/*.cruds"),
        ("admin", "user/*.rs"),
        ("privacy_officer", "user/*.rs"),
    ):
        refusal = review_access(who(role, scope), use)
        assert isinstance(refusal, Refusal) and refusal.status == 403
    missing = review_access(None, use)
    assert isinstance(missing, Refusal) and missing.status == 401


def test_patients_report_only_in_their_own_care():
    assert may_report_duplicate(who("patient", "patient/*.cruds"), "pat1") is None
    cases = [
        (who("patient", "patient/*.cruds"), "someone-else", 403),
        (who("patient", "patient/*.rs"), "pat1", 403),  # scopes allow no create
        (who("clinician", "user/*.cruds"), "pat1", 403),
        (who("reviewer", "user/*.rs"), "pat1", 403),
        (OPERATOR, "pat1", 403),
        (None, "pat1", 401),
    ]
    for principal, patient, status in cases:
        refusal = may_report_duplicate(principal, patient)
        assert refusal is not None and refusal.status == status, (principal, patient)
