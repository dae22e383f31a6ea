"""Feedback theme counts against a plain-Python reference on random responses."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from register import feedback

THEMES = list(feedback.themes())
MONTHS = ["2026-01", "2026-02", "2026-11"]


def _response(theme: str, month: str, questionnaire: str, comment: str) -> dict:
    answer = feedback.response_for("p1", theme, comment)
    answer["authored"] = f"{month}-15T10:00:00+00:00"
    answer["questionnaire"] = questionnaire
    return answer


responses = st.lists(
    st.builds(
        _response,
        st.sampled_from(THEMES),
        st.sampled_from(MONTHS),
        st.sampled_from([feedback.questionnaire()["url"], "https://example.org/Questionnaire/x"]),
        st.text(max_size=20),
    ),
    max_size=40,
)


@given(responses)
def test_counts_match_a_reference_model(answers: list[dict]) -> None:
    expected: dict[tuple[str, str], int] = {}
    for a in answers:
        if a["questionnaire"] == feedback.questionnaire()["url"]:
            key = (a["authored"][:7], a["item"][0]["answer"][0]["valueCoding"]["code"])
            expected[key] = expected.get(key, 0) + 1
    got = feedback.count_themes(answers)
    assert {(c.month, c.theme): c.count for c in got} == {
        k: (str(n) if n >= 5 else "<5") for k, n in expected.items()
    }
    assert [(c.month, THEMES.index(c.theme)) for c in got] == sorted(
        (c.month, THEMES.index(c.theme)) for c in got
    )
