// The newest events under the filters, newest first: when, what, who, where, and the `seq`
// that orders them (the number a resumed stream continues from).

import { h } from "../dom.js";
import { describe, typeColour, typeLabel } from "./event_labels.js";

const FEED_ROWS = 200;
const CLOCK = new Intl.DateTimeFormat(undefined, { hour: "2-digit", minute: "2-digit", second: "2-digit" });

export function eventFeed(directory) {
  const body = h("tbody", { id: "feed" });
  const count = h("p", { class: "hint", id: "feed-count" });
  const element = h("section", { class: "panel feed-panel", id: "event-feed", "aria-labelledby": "feed-title" },
    h("div", { class: "panel-head" }, h("h2", { id: "feed-title" }, "Latest events"), count),
    h("div", { class: "feed-scroll", tabindex: "0", role: "region", "aria-label": "Latest events, scrollable" },
      h("table", { class: "feed-table" },
        h("thead", {}, h("tr", {}, ["Time", "Event", "By", "Where", "Detail", "Seq"].map((t, i) =>
          h("th", { scope: "col", class: i === 5 ? "num" : "" }, t)))),
        body)));

  function where(record) {
    const parts = [];
    if (record.doc) {
      const doc = directory.doc(record.doc);
      parts.push(h("a", { href: `#/d/${encodeURIComponent(record.doc)}`, class: "doc-link" },
        directory.docTitle(record.doc)));
      const kind = doc.kind ?? record.kind;
      if (kind) parts.push(" ", h("span", { class: `kind kind-${kind}` }, kind));
    }
    if (record.idea) {
      parts.push(h("span", { class: "feed-idea" }, directory.ideaTitle(record.idea)));
    }
    return parts.length ? parts : h("span", { class: "hint" }, "—");
  }

  function row(record) {
    const actor = record.actor ?? { name: "?" };
    return h("tr", { dataset: { seq: String(record.seq), type: record.type } },
      h("td", { class: "feed-time" }, h("time", { datetime: new Date(record.ts).toISOString() },
        CLOCK.format(new Date(record.ts)))),
      h("td", {}, h("span", { class: "feed-type" },
        h("span", { class: "swatch", style: `background: ${typeColour(record.type)}`, "aria-hidden": "true" }),
        typeLabel(record.type))),
      h("td", {}, actor.name, actor.kind && actor.kind !== "user"
        ? h("span", { class: "actor-kind" }, actor.kind) : null),
      h("td", { class: "feed-where" }, where(record)),
      h("td", { class: "feed-detail" }, describe(record)),
      h("td", { class: "num feed-seq" }, `#${record.seq}`));
  }

  // Rows are built once per event and kept while shown; new names (a title read at last)
  // throw them away, so the next update builds them again with the names.
  let rows = new Map();
  directory.on("change", () => { rows = new Map(); });
  const rowOf = (record) => rows.get(record.seq) ?? rows.set(record.seq, row(record)).get(record.seq);

  function update(records) {
    const newest = records.slice(-FEED_ROWS).reverse();
    const shown = newest.map(rowOf);
    if (rows.size > FEED_ROWS * 2) rows = new Map(newest.map((r, i) => [r.seq, shown[i]]));
    body.replaceChildren(...(newest.length ? shown
      : [h("tr", {}, h("td", { colspan: "6", class: "empty" }, "No events in this window match the filters."))]));
    count.textContent = records.length > FEED_ROWS
      ? `The newest ${FEED_ROWS} of ${records.length.toLocaleString()}`
      : `${records.length.toLocaleString()} in the last 60 minutes`;
  }

  return { element, update };
}
