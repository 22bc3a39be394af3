// The locks held right now across the team's documents: what is locked, where, by whom and
// since when (when the last hour saw the lock taken).

import { h, icon } from "../dom.js";
import { avatar } from "./people.js";
import { placeOf } from "./event_labels.js";

const CLOCK = new Intl.DateTimeFormat(undefined, { hour: "2-digit", minute: "2-digit", second: "2-digit" });

export function lockBoard(directory) {
  const list = h("ul", { class: "lock-list", id: "lock-list" });
  const count = h("p", { class: "hint", id: "lock-count" });
  const more = h("p", { class: "hint", id: "lock-more" });
  const element = h("section", { class: "panel", id: "locks-panel", "aria-labelledby": "locks-title" },
    h("div", { class: "panel-head" }, h("h2", { id: "locks-title" }, "Locks held"), count),
    list, more);

  function item(lock, since) {
    const doc = directory.doc(lock.doc);
    const holder = lock.holder.user;
    return h("li", { class: "lock-item", dataset: { doc: lock.doc, path: lock.path, holder: holder.id } },
      h("span", { class: "lock-icon" }, icon("lock")),
      h("div", { class: "lock-text" },
        h("span", {}, h("strong", { class: "lock-region" }, placeOf(lock.path)), " in ",
          h("a", { href: `#/d/${encodeURIComponent(lock.doc)}`, class: "doc-link" }, directory.docTitle(lock.doc)),
          doc.kind ? [" ", h("span", { class: `kind kind-${doc.kind}` }, doc.kind)] : null),
        h("small", {}, since ? `since ${CLOCK.format(new Date(since))}` : "held for over an hour")),
      h("span", { class: "holder" }, avatar(holder), holder.name));
  }

  function update(locks, { takenAt, truncated }) {
    list.replaceChildren(...(locks.length ? locks.map((lock) => item(lock, takenAt(lock)))
      : [h("li", { class: "empty" }, "No locks held right now.")]));
    count.textContent = `${locks.length} held`;
    count.dataset.count = String(locks.length);
    more.textContent = truncated ? "More locks are held than shown here (the oldest 500 are listed)." : "";
  }

  return { element, update };
}
