"""Investment memos for the search benchmark: English-like prose with companies, tickers and
numbers, the same for a given seed and index on every run.

Each memo is made from its own ``random.Random(seed, index)``, so any one can be rebuilt
without the others (the queries are drawn from memos rebuilt this way). Common business words
follow a Zipf-like law, as words of real prose do: a few appear in most memos, most in few.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from typing import Any

__all__ = ["Memo", "memo", "paragraph"]

_SYLLABLES = ("al", "ben", "cor", "dra", "el", "fin", "gal", "hex", "ion", "jar", "kel", "lum",
              "mar", "nov", "or", "pax", "qua", "ral", "sol", "tor", "ul", "ver", "wex", "xan",
              "yor", "zen", "tri", "sta", "bro", "cla")
_SUFFIXES = ("Holdings", "Industries", "Systems", "Energy", "Therapeutics", "Semiconductor",
             "Logistics", "Financial", "Networks", "Foods", "Materials", "Software", "Retail",
             "Pharma", "Capital", "Robotics", "Media", "Mining", "Airlines", "Biosciences")
_KINDS = ("memo", "valuation", "monitoring", "normalization")
_METRICS = ("revenue", "gross margin", "EBITDA", "free cash flow", "operating income",
            "bookings", "annual recurring revenue", "net retention", "backlog", "unit volume",
            "average selling price", "inventory days", "capital expenditure", "net debt")
_COMMON_PROSE = (
    "management guidance quarter growth pricing demand customers market share competition "
    "margin expansion leverage valuation multiple earnings estimates consensus upside downside "
    "risk catalyst thesis execution strategy acquisition integration synergies balance sheet "
    "liquidity refinancing covenant dividend buyback capital allocation returns invested "
    "capital cycle recovery inflation costs wages supply chain freight inputs commodity "
    "exposure currency headwinds tailwinds regulation approval launch pipeline product "
    "platform subscription renewal churn pricing power moat switching costs scale operating "
    "efficiency restructuring footprint capacity utilization utilisation channel inventory "
    "destocking restocking order intake backlog conversion visibility seasonality weather "
    "consumer spending enterprise budgets cloud migration software hardware services "
    "recurring transactional volumes mix premium discount promotion retention acquisition "
    "payback cohort engagement monetization advertising partners distribution wholesale "
    "direct online stores footprint international domestic emerging markets china europe "
    "americas tariffs sanctions litigation settlement patent expiry generic competition "
    "biosimilar reimbursement payers hospitals procedures backlog elective recovery "
    "management team founder succession incentives alignment governance board activist "
    "shareholders dilution convertible issuance rating agencies investment grade spread "
    "duration rates sensitivity hedging commodity prices oil gas power renewables storage "
    "grid transmission utilities permits construction contractors materials cement steel "
    "aluminum copper lithium batteries vehicles charging autonomy semiconductors wafers "
    "foundry memory logic equipment lithography yields nodes inventory correction pricing "
    "reset normalization earnings power through cycle scenario bull base bear probability "
    "weighted target price discounted cash terminal growth sum parts comparable peers "
    "premium justified catalysts investor meeting capital markets day")
_COMMON = tuple(_COMMON_PROSE.split())
_VERBS = ("expects", "reiterated", "lowered", "raised", "flagged", "highlighted", "signalled",
          "confirmed", "withdrew", "narrowed")
_TEMPLATES = (
    "{company} ({ticker}) reported {metric} of ${n1}m in {quarter}, {dir} {p1}% year over year.",
    "Management {verb} {metric} guidance of ${n1}m to ${n2}m for fiscal {year}.",
    "We see {w1} {w2} as the main {w3} for {ticker} over the next {n3} quarters.",
    "The {w1} {w2} story depends on {w3} and {w4}, which the market underestimates.",
    "At {m1}x forward earnings {ticker} trades at a {p1}% discount to peers.",
    "Our base case assumes {metric} grows {p1}% a year with {w1} {w2} offsetting {w3}.",
    "Key risks include {w1} {w2}, {w3} and a slower {w4} than we model.",
    "A {w1} in {w2} could lift {metric} by {p1}% and the shares by {p2}%.",
    "{company} ended {quarter} with ${n2}m of net cash and {n3} months of {w1} {w2}.",
    "The next catalyst is the {quarter} print, where {w1} and {w2} should improve.",
)


@dataclass(frozen=True, slots=True)
class Memo:
    kind: str
    title: str
    state: dict[str, Any]


def _zipf_words(rng: random.Random, count: int) -> list[str]:
    # Weight 1/rank: the first words of the list are common, the last rare.
    return rng.choices(_COMMON, cum_weights=_CUMULATIVE, k=count)


_CUMULATIVE: list[float] = []
_total = 0.0
for _rank in range(1, len(_COMMON) + 1):
    _total += 1.0 / _rank
    _CUMULATIVE.append(_total)


def _company(rng: random.Random) -> tuple[str, str]:
    name = "".join(rng.choice(_SYLLABLES) for _ in range(rng.randint(2, 3))).capitalize()
    ticker = "".join(rng.choice("ABCDEFGHIJKLMNOPQRSTUVWXYZ") for _ in range(rng.randint(3, 4)))
    return f"{name} {rng.choice(_SUFFIXES)}", ticker


def paragraph(rng: random.Random, company: str, ticker: str, sentences: int) -> str:
    """Some sentences of memo prose about one company."""
    out = []
    for _ in range(sentences):
        w = _zipf_words(rng, 4)
        out.append(rng.choice(_TEMPLATES).format(
            company=company, ticker=ticker, metric=rng.choice(_METRICS),
            quarter=f"Q{rng.randint(1, 4)} {rng.randint(2019, 2026)}",
            year=rng.randint(2024, 2028), dir=rng.choice(("up", "down")),
            verb=rng.choice(_VERBS), n1=rng.randint(10, 9000), n2=rng.randint(10, 9000),
            n3=rng.randint(2, 12), p1=rng.randint(1, 60), p2=rng.randint(1, 60),
            m1=rng.randint(4, 45), w1=w[0], w2=w[1], w3=w[2], w4=w[3]))
    return " ".join(out)


def memo(seed: int, index: int) -> Memo:
    """Memo ``index`` of the set made from ``seed``: about 200 words in five fields."""
    rng = random.Random(seed * 10_000_019 + index)
    company, ticker = _company(rng)
    kind = rng.choice(_KINDS)
    state = {
        "ticker": ticker,
        "thesis": paragraph(rng, company, ticker, 4),
        "financials": paragraph(rng, company, ticker, 3),
        "risks": paragraph(rng, company, ticker, 2),
        "catalysts": paragraph(rng, company, ticker, 2),
        "valuation": {"method": rng.choice(("DCF", "EV/EBITDA", "P/E", "sum of the parts")),
                      "target": rng.randint(5, 900), "note": paragraph(rng, company, ticker, 1)},
    }
    return Memo(kind, f"{company} ({ticker}) {kind}", state)
