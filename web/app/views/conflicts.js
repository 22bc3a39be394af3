// Refused and overtaken edits, each shown beside what won, until the user decides: keep
// theirs, reapply theirs-then-mine (their value is replaced by the user's), or merge by hand.
// Nothing leaves this panel without a click.

import { h, icon } from "../dom.js";

const REASONS = {
  conflict: "Someone else changed it first",
  locked: "It is locked by someone else",
  forbidden: "You may not edit this document",
  bad_request: "The server could not apply it",
  too_large: "The document would grow too large",
};

export function renderConflicts(root, sync, describe) {
  if (!sync.conflicts.length) {
    root.replaceChildren();
    root.hidden = true;
    return;
  }
  root.hidden = false;
  root.replaceChildren(
    h("h2", { id: "conflicts-title" }, h("span", { "aria-hidden": "true" }, "⚠ "),
      sync.conflicts.length === 1 ? "1 change of yours needs a decision"
        : `${sync.conflicts.length} changes of yours need a decision`),
    ...sync.conflicts.map((conflict) => conflictCard(sync, conflict, describe(conflict.path))));
}

function conflictCard(sync, conflict, { label, format, multiline, parse, edit }) {
  const theirs = sync.theirs(conflict);
  const writer = sync.writerOf(conflict.path);
  const who = conflict.lock ? conflict.lock.holder.user.name : writer?.name ?? "someone else";
  const editable = conflict.reason === "conflict" || conflict.reason === "locked";
  const show = (value) => h(multiline ? "pre" : "p", { class: "value" }, format(value));
  const mergeBox = multiline
    ? h("textarea", { class: "merge-input", rows: 5, "aria-label": `Merged ${label}` })
    : h("input", { class: "merge-input", "aria-label": `Merged ${label}` });
  const merge = h("form", { class: "merge", hidden: true, onsubmit: (event) => {
    event.preventDefault();
    const value = parse ? parse(mergeBox.value) : mergeBox.value;
    if (value === null) return;
    sync.resolve(conflict.id, "merged", value);
  } },
    h("label", {}, `Your merged ${label}`, mergeBox),
    h("div", { class: "actions" }, h("button", { class: "primary", type: "submit" }, "Save merged"),
      h("button", { type: "button", onclick: () => { merge.hidden = true; } }, "Cancel")));
  return h("article", { class: "conflict", dataset: { path: conflict.path },
                        "aria-label": `Conflict on ${label}` },
    h("h3", {}, `Your change to ${label} was not saved`),
    h("p", { class: "reason" }, `${REASONS[conflict.reason] ?? conflict.reason}`,
      conflict.reason === "conflict" || conflict.reason === "locked" ? ` (${who})` : "",
      conflict.message ? `: ${conflict.message}` : "."),
    h("div", { class: "compare" },
      h("div", { class: "side theirs" }, h("h4", {}, editable ? `Now saved (${who})` : "Now saved"),
        show(theirs)),
      h("div", { class: "side yours" }, h("h4", {}, "Yours"), show(conflict.yours))),
    h("div", { class: "actions" },
      h("button", { type: "button", onclick: () => sync.resolve(conflict.id, "theirs") },
        editable ? "Keep theirs" : "Discard mine"),
      editable ? h("button", { type: "button", class: "primary",
                               onclick: () => sync.resolve(conflict.id, "mine") }, "Reapply mine") : null,
      editable ? h("button", { type: "button", onclick: () => {
        const start = conflict.yours ?? theirs;
        mergeBox.value = edit ? edit(start) : String(start ?? "");
        merge.hidden = false;
        mergeBox.focus();
      } }, "Merge by hand") : null),
    merge);
}

const ENDED = {
  released: "was released", disconnected: "ended: its holder disconnected",
  expired: "expired", stolen: "was taken over by an admin",
};

export function renderNotices(root, sync, describe) {
  root.replaceChildren(...sync.notices.map((notice) => {
    const where = notice.path ? describe(notice.path).label : "the whole document";
    const text = `${notice.mine ? "Your" : `${notice.holder}'s`} lock on ${where} ` +
      `${ENDED[notice.reason] ?? notice.reason}.`;
    return h("div", { class: `notice ${notice.reason}`, role: "status" },
      icon("unlock"), h("span", {}, text),
      h("button", { type: "button", class: "small quiet", "aria-label": "Dismiss",
                    onclick: () => sync.dismissNotice(notice.id) }, "✕"));
  }));
}
