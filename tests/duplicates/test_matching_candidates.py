"""The registration check asks the database only for rows that can score as a strong match.

``store.identity_candidates(strong_only=True)`` selects the same NHS number, or the same family
name and birth date. That is only right while the weights in ``matching.py`` make every strong
match one of those; this property holds the two together.
"""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from register.duplicates.matching import STRONG_MATCH, Identity, score

_small = st.sampled_from(["", "a", "b"])
identities = st.builds(
    Identity,
    patient_id=st.just("p"),
    nhs_number=st.one_of(st.none(), st.sampled_from(["9000000009", "9000000017"])),
    family=_small,
    given=st.sampled_from(["", "ann", "anne", "bob"]),
    birth_date=st.one_of(st.none(), st.sampled_from(["1960-01-01", "1970-02-02"])),
    gender=st.one_of(st.none(), st.sampled_from(["female", "male"])),
    postcode=_small,
)


@given(identities, identities)
def test_every_strong_match_is_a_strong_candidate(query: Identity, candidate: Identity) -> None:
    """A strong score implies the same NHS number, or the same family name and birth date."""
    if score(query, candidate) >= STRONG_MATCH:
        same_number = query.nhs_number is not None and query.nhs_number == candidate.nhs_number
        same_family_and_birth = (
            query.birth_date is not None
            and query.birth_date == candidate.birth_date
            and query.family == candidate.family
        )
        assert same_number or same_family_and_birth
