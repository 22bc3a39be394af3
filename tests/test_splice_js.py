"""The browser's splice transform (web/splice.js) in real Chromium, held to the server's.

The module is imported the way the workbench would import it, from the running server's
``/web/``; the shared vectors, random sequences over text with astral characters, and the
server's own ``persistence.splices.transform`` on the same cases decide whether it is right.
"""

from __future__ import annotations

import asyncio
import json
import random
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from playwright.async_api import Browser, Page

from persistence.splices import Splice, transform
from tests.chromium import launch_chromium, needs_chromium
from tests.support import TIMEOUT, RunningServer

VECTORS = json.loads((Path(__file__).parent / "vectors" / "splice.json").read_text())

pytestmark = [
    needs_chromium,
    # The module runs in the page alone; one database backend is enough to serve it.
    pytest.mark.parametrize("backend", ["sqlite"], indirect=True),
]

# Shared by the scripts below: a seeded PRNG (mulberry32) and random splice sequences made on
# one text, the same shape as the server's property test, with an emoji in texts and inserts.
RANDOM_CASES = """
const rng = (seed) => () => {
  seed = (seed + 0x6D2B79F5) | 0;
  let t = Math.imul(seed ^ (seed >>> 15), 1 | seed);
  t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
  return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
};
const randomCases = (seed, count) => {
  const next = rng(seed);
  const below = (n) => Math.floor(next() * n);
  const text = (alphabet, max) =>
    Array.from({length: below(max + 1)}, () => alphabet[below(alphabet.length)]).join("");
  const sequence = (length) => Array.from({length: 1 + below(4)}, () => {
    const at = below(length + 1), remove = below(length - at + 1);
    const insert = text(["X", "Y", "\\u{1F600}"], 3);
    length += Array.from(insert).length - remove;
    return {at, remove, insert};
  });
  return Array.from({length: count}, () => {
    const t = text(["a", "b", "c", "\\u{1F600}"], 12);
    const length = Array.from(t).length;
    return {text: t, ours: sequence(length), theirs: sequence(length)};
  });
};
"""


@pytest.fixture
async def browser() -> AsyncIterator[Browser]:
    async with launch_chromium() as launched:
        yield launched


@pytest.fixture
async def page(browser: Browser, server: RunningServer) -> Page:
    """A page of the running server, from which ``/web/splice.js`` imports."""
    context = await asyncio.wait_for(browser.new_context(), TIMEOUT)
    context.set_default_timeout(TIMEOUT * 1000)
    opened = await asyncio.wait_for(context.new_page(), TIMEOUT)
    await opened.goto(server.http_url + "/")
    return opened


async def in_page(page: Page, body: str, argument: Any = None) -> Any:
    """Run ``body`` in the page with the module as ``m`` and ``argument`` as ``arg``."""
    script = f"async (arg) => {{ const m = await import('/web/splice.js'); {body} }}"
    return await asyncio.wait_for(page.evaluate(script, argument), TIMEOUT)


def _splice_dicts(splices: list[Splice]) -> list[dict[str, Any]]:
    return [{"at": s.at, "remove": s.remove, "insert": s.insert} for s in splices]


def _python_cases(seed: int, count: int) -> list[dict[str, Any]]:
    """Random cases like the page's, carried by the server's transform."""
    rng = random.Random(seed)

    def text(alphabet: str, most: int) -> str:
        return "".join(rng.choice(alphabet) for _ in range(rng.randint(0, most)))

    def sequence(length: int) -> list[Splice]:
        splices = []
        for _ in range(rng.randint(1, 4)):
            at = rng.randint(0, length)
            splice = Splice(at, rng.randint(0, length - at), text("XY\U0001F600", 3))
            splices.append(splice)
            length += splice.growth
        return splices

    cases = []
    for _ in range(count):
        original = text("abc\U0001F600", 12)
        ours, theirs = sequence(len(original)), sequence(len(original))
        ours_after, theirs_after = transform(ours, theirs)
        cases.append({"text": original, "ours": _splice_dicts(ours),
                      "theirs": _splice_dicts(theirs), "ours_after": _splice_dicts(ours_after),
                      "theirs_after": _splice_dicts(theirs_after)})
    return cases


async def test_shared_vectors(page: Page) -> None:
    """Each shared vector's splices carry to the listed form and give the listed text."""
    results = await in_page(page, """
        return arg.map(({ours, theirs, text}) => {
          const [oursAfter] = m.transform(ours, theirs);
          return {ours_after: oursAfter,
                  result: m.applySplices(m.applySplices(text, theirs), oursAfter)};
        });
    """, VECTORS["cases"])
    for case, result in zip(VECTORS["cases"], results, strict=True):
        assert result == {"ours_after": case["ours_after"], "result": case["result"]}, case["name"]


async def test_both_orders_give_one_text(page: Page) -> None:
    """Theirs then ours carried equals ours then theirs carried, on 2,000 random cases."""
    diverged = await in_page(page, RANDOM_CASES + """
        return randomCases(20261201, 2000).filter(({text, ours, theirs}) => {
          const [oursAfter, theirsAfter] = m.transform(ours, theirs);
          return m.applySplices(m.applySplices(text, theirs), oursAfter) !==
                 m.applySplices(m.applySplices(text, ours), theirsAfter);
        });
    """)
    assert diverged == []


async def test_same_results_as_the_server(page: Page) -> None:
    """The browser's transform gives exactly the server's splices on 300 random cases."""
    cases = _python_cases(seed=10, count=300)
    carried = await in_page(page, """
        return arg.map(({ours, theirs}) => m.transform(ours, theirs));
    """, [{"ours": c["ours"], "theirs": c["theirs"]} for c in cases])
    for case, (ours_after, theirs_after) in zip(cases, carried, strict=True):
        assert (ours_after, theirs_after) == (case["ours_after"], case["theirs_after"]), case


async def test_positions_count_code_points(page: Page) -> None:
    """Index conversions round-trip across emoji, and an edit becomes one code-point splice."""
    results = await in_page(page, r"""
        const text = "a\u{1F600}b\u{1F469}\u{200D}\u{1F4BB}c";
        const units = Array.from(text, (_, i) => m.toUtf16Index(text, i));
        return {
          units: [...units, m.toUtf16Index(text, Array.from(text).length)],
          back: units.map((unit) => m.toCodePointIndex(text, unit)),
          edits: [["abc", "abc"], ["abc", "aXbc"], ["a\u{1F600}b", "ab"],
                  ["a\u{1F600}b", "a\u{1F601}b"], ["\u{1F600}", "\u{1F600}\u{1F600}x"],
                  ["ab\u{1F600}", "\u{1F600}"]]
                 .map(([before, after]) => m.splicesFromEdit(before, after)),
        };
    """)
    assert results == {
        "units": [0, 1, 3, 4, 6, 7, 9, 10],
        "back": [0, 1, 2, 3, 4, 5, 6],
        "edits": [
            None,
            {"at": 1, "remove": 0, "insert": "X"},
            {"at": 1, "remove": 1, "insert": ""},
            {"at": 1, "remove": 1, "insert": "\U0001F601"},
            {"at": 1, "remove": 0, "insert": "\U0001F600x"},
            {"at": 0, "remove": 2, "insert": ""},
        ],
    }


async def test_pending_splices_meet_a_delta(page: Page) -> None:
    """A client holding its pending splices and applying the carried delta reaches the server's
    text, the one the server reaches by applying the delta and then the carried pending ones."""
    results = await in_page(page, RANDOM_CASES + """
        const meet = ({text, ours: pending, theirs: incoming}) => {
          const [pendingAfter, incomingAfter] = m.rebasePending(pending, incoming);
          return {client: m.applySplices(m.applySplices(text, pending), incomingAfter),
                  server: m.applySplices(m.applySplices(text, incoming), pendingAfter)};
        };
        const margin = {text: "The margin is thin.",
                        ours: [{at: 4, remove: 0, insert: "gross "}],
                        theirs: [{at: 14, remove: 4, insert: "widening"}]};
        return {margin: meet(margin),
                diverged: randomCases(7, 500).map(meet).filter((r) => r.client !== r.server)};
    """)
    assert results == {
        "margin": {"client": "The gross margin is widening.",
                   "server": "The gross margin is widening."},
        "diverged": [],
    }
