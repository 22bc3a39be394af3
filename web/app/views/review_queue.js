// The open reviews of the team, most urgent first: overdue ones (the longest overdue on
// top), then by due date, then those without one. An overdue review says so in words with
// an alert icon and a marked edge, never by colour alone.

import { h, icon, dateOf } from "../dom.js";
import { isOverdue } from "../review_trail.js";
import { STATUS_LABELS } from "./reviews_panel.js";
import { avatar } from "./people.js";

const HOUR_MS = 3_600_000;
const DAY_MS = 24 * HOUR_MS;

function lateness(review, now) {
  const late = now - Date.parse(review.due);
  if (late >= DAY_MS) {
    const days = Math.floor(late / DAY_MS);
    return `${days} day${days > 1 ? "s" : ""}`;
  }
  const hours = Math.max(1, Math.floor(late / HOUR_MS));
  return late >= HOUR_MS ? `${hours} hour${hours > 1 ? "s" : ""}` : "less than an hour";
}

function urgency(a, b, now) {
  const lateA = isOverdue(a, now), lateB = isOverdue(b, now);
  if (lateA !== lateB) return lateA ? -1 : 1;
  if (a.due && b.due) return Date.parse(a.due) - Date.parse(b.due);
  if (a.due || b.due) return a.due ? -1 : 1;
  return a.created_at < b.created_at ? -1 : 1;
}

export function reviewQueue(directory) {
  const list = h("ol", { class: "queue", id: "review-queue" });
  const count = h("p", { class: "hint", id: "queue-count" });
  const element = h("section", { class: "panel", id: "queue-panel", "aria-labelledby": "queue-title" },
    h("div", { class: "panel-head" }, h("h2", { id: "queue-title" }, "Review queue"), count),
    list);

  function item(review, now) {
    const overdue = isOverdue(review, now);
    const who = review.reviewer.name ?? review.reviewer.id;
    return h("li", { class: `queue-item${overdue ? " overdue" : ""}`,
                     dataset: { id: review.id, status: review.status, overdue: String(overdue) } },
      avatar({ id: review.reviewer.id, name: who }),
      h("div", { class: "queue-text" },
        h("a", { href: `#/d/${encodeURIComponent(review.doc)}`, class: "doc-link" }, directory.docTitle(review.doc)),
        h("small", {}, `${review.stage} · reviewer ${who} · asked by ${review.assigned_by.name ?? review.assigned_by.id}`),
        overdue
          ? h("p", { class: "overdue-note" }, icon("alert"),
              `Overdue by ${lateness(review, now)} (due ${dateOf(review.due)})`)
          : h("p", { class: "due" }, icon("clock"), review.due ? `Due ${dateOf(review.due)}` : "No due date")),
      h("span", { class: `status-badge status-${review.status}` }, STATUS_LABELS[review.status] ?? review.status));
  }

  function update(reviews, { loaded }) {
    const now = Date.now();
    const sorted = [...reviews].sort((a, b) => urgency(a, b, now));
    const late = sorted.filter((r) => isOverdue(r, now)).length;
    list.replaceChildren(...(sorted.length ? sorted.map((r) => item(r, now))
      : [h("li", { class: "empty" }, loaded ? "No open reviews." : "Loading…")]));
    count.replaceChildren(`${sorted.length} open`, late ? h("span", { class: "late-count" },
      icon("alert"), ` ${late} overdue`) : "");
    count.dataset.open = String(sorted.length);
    count.dataset.overdue = String(late);
  }

  return { element, update };
}
