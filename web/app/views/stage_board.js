// Who is on which stage right now: a column per stage (memo, normalization, valuation,
// monitoring), one line per person and document, with what they are doing in words.

import { h } from "../dom.js";
import { avatar } from "./people.js";
import { placeOf } from "./event_labels.js";

const STATUS = { editing: "Editing", viewing: "Viewing", idle: "Idle" };

export function stageBoard(directory) {
  const columns = h("div", { class: "stage-columns", id: "stage-board" });
  const count = h("p", { class: "hint", id: "people-count" });
  const element = h("section", { class: "panel", id: "presence-panel", "aria-labelledby": "presence-title" },
    h("div", { class: "panel-head" }, h("h2", { id: "presence-title" }, "Who is on which stage"), count),
    columns);

  function person(entry) {
    const status = entry.state?.status ?? "viewing";
    const focus = typeof entry.state?.focus === "string" ? placeOf(entry.state.focus) : "";
    return h("li", { class: "stage-person", dataset: { user: entry.user.id, doc: entry.doc, status } },
      avatar(entry.user, { note: `${STATUS[status] ?? status} ${directory.docTitle(entry.doc)}` }),
      h("div", { class: "stage-person-text" },
        h("strong", {}, entry.user.name),
        h("a", { href: `#/d/${encodeURIComponent(entry.doc)}`, class: "stage-doc" }, directory.docTitle(entry.doc)),
        h("small", { class: `status-word status-word-${status}` }, STATUS[status] ?? status,
          focus ? ` · ${focus}` : "")));
  }

  function update(stages) {
    const people = new Set();
    columns.replaceChildren(...stages.map((stage) => {
      for (const e of stage.entries) people.add(e.user.id);
      return h("div", { class: `stage-column${stage.shown ? "" : " filtered-out"}`, dataset: { kind: stage.kind,
                                                                                               count: String(stage.entries.length) } },
        h("h3", {}, h("span", { class: `kind kind-${stage.kind}` }, stage.label),
          h("span", { class: "stage-column-count", "aria-label": `${stage.entries.length} here` },
            String(stage.entries.length))),
        stage.entries.length
          ? h("ul", { class: "stage-people" }, stage.entries.map(person))
          : h("p", { class: "empty" }, stage.shown ? "Nobody right now" : "Hidden by the kind filter"));
    }));
    count.textContent = `${people.size} ${people.size === 1 ? "person" : "people"} online`;
    count.dataset.count = String(people.size);
  }

  return { element, update };
}
