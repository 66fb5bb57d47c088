"""Claim-level checks of LLM text against the passages it cites."""

import pytest

from advisor.claims import check_claim, check_reply, claims_of

SALARY = (
    "Average Salary of Machine Learning Engineers\nEntry Level $85,000\nMid-Level $120,000\nSenior Level $170,000\n"
    "Demand in the U.S. grew 43.8% since 2020, and two years of experience is typical."
)
EDUCATION = "Bachelor's Degree 40%\nMaster's Degree 55%\nPh.D. 5%"


@pytest.mark.parametrize(
    "claim",
    [
        "Mid-level engineers earn $120,000 [1].",
        "Mid-level engineers earn about $120k a year [1].",  # the same figure, written another way
        "According to the documents, senior level salary is $170,000 [1].",
        "Machine Learning Engineers in the U.S. saw demand grow 43.8% [1].",  # title case and an acronym found
        "- Entry Level: $85,000 [1]",
        "Experience of 2 years is typical [1].",
        "Only 5% hold a Ph.D. [2]",
        "Salaries rise with the level: $85,000 at entry [1] and a master's degree for 55% [2].",
    ],
)
def test_a_claim_the_cited_passage_says_is_kept(claim):
    assert check_claim(claim, [SALARY, EDUCATION]).supported


@pytest.mark.parametrize(
    ("claim", "why"),
    [
        ("Mid-level engineers earn $340,000 [1].", "figure '340,000'"),  # a valid marker, a wrong figure
        ("About 25% hold a Ph.D. [2].", "figure '25%'"),
        ("Senior engineers earn $170,000 [2].", "figure"),  # said, but not by the passage it cites
        ("Engineers at Google earn $120,000 [1].", "name 'Google'"),
        ("Visa sponsorship is rarely offered to engineers [1].", "of its words"),
        ("Engineers earn a lot of money.", "cites no passage"),
        ("Engineers earn $120,000 [7].", "cites no passage"),  # no passage 7 was given
    ],
)
def test_a_claim_the_cited_passage_does_not_say_is_removed(claim, why):
    checked = check_claim(claim, [SALARY, EDUCATION])
    assert not checked.supported and why in checked.why


def test_a_reply_keeps_its_supported_sentences_and_lines():
    reply = "Mid-level engineers earn $120,000 [1]. About 25% hold a Ph.D. [2].\n- Entry: $85,000. [1]\n- Lead: $250,000 [1]"
    kept, judged = check_reply(reply, [SALARY, EDUCATION])
    assert kept == "Mid-level engineers earn $120,000 [1].\n- Entry: $85,000 [1]."
    assert [c.supported for c in judged] == [True, False, True, False]


def test_claims_split_on_sentences_and_a_marker_after_the_full_stop_moves_before_it():
    assert claims_of("Pay is $85,000. [1] It grows, e.g. in the U.S. market [2].\n\n- SQL [1]") == [
        ["Pay is $85,000 [1].", "It grows, e.g. in the U.S. market [2]."],
        ["- SQL [1]"],
    ]
