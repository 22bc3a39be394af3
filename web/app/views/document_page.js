// One document: its header (title, who is here, save state), the conflict panel, lock notices
// and the editor for its kind. The page owns the document's sync for as long as it is shown.

import { h, icon } from "../dom.js";
import { DocumentSync } from "../document_sync.js";
import { memoEditor } from "./memo_editor.js";
import { valuationTable } from "./valuation_table.js";
import { renderConflicts, renderNotices } from "./conflicts.js";
import { peopleHere } from "./people.js";
import { DocumentTrail } from "../review_trail.js";
import { reviewsPanel } from "./reviews_panel.js";
import { sectionComments } from "./comments.js";

const EDITORS = { memo: memoEditor, valuation: valuationTable };

function genericView(sync) {
  const pre = h("pre", { class: "raw-state" });
  const render = () => { pre.textContent = JSON.stringify(sync.local, null, 2); };
  const stop = sync.on("change", render);
  render();
  return { element: h("div", {}, h("p", { class: "hint" }, "This kind of document has no editor yet; ",
    "its state is shown as it is."), pre), destroy: stop,
  describe: (path) => ({ label: path, format: (v) => JSON.stringify(v) }) };
}

export function saveStatus(sync) {
  const live = sync.wire.live;
  const unsaved = sync.unsaved;
  if (!live) {
    return unsaved ? `Offline: ${unsaved} unsaved change${unsaved > 1 ? "s" : ""} kept on this page`
      : "Offline: changes you make are kept";
  }
  if (unsaved) return "Saving…";
  return `All changes saved · version ${sync.version}`;
}

export function renderDocumentPage(root, { api, wire, session, stages, docId }) {
  const started = performance.now();
  const title = h("h1", { id: "doc-title" }, "Loading…");
  const kind = h("span", { class: "kind" });
  const status = h("p", { id: "save-status", class: "save-status", role: "status" }, "");
  const people = h("div", { class: "people-holder" });
  const notices = h("div", { class: "notices", id: "notices" });
  const conflicts = h("section", { class: "conflicts", id: "conflicts", hidden: true,
                                   "aria-labelledby": "conflicts-title" });
  const message = h("p", { class: "page-message", role: "alert", id: "page-message" });
  const body = h("div", { class: "doc-body" });
  const aside = h("aside", { class: "doc-aside", "aria-label": "Reviews and comments" });
  const layout = h("div", { class: "doc-layout" }, body, aside);
  const readOnly = session.mayEdit() ? null
    : h("p", { class: "read-only-note", id: "read-only-note" }, icon("eye"),
      "Read only: your role may view this document but not change it.");
  root.replaceChildren(h("article", { class: "doc-page" },
    h("div", { class: "doc-head" },
      h("div", { class: "doc-title-row" },
        h("a", { href: "#/documents", class: "back", id: "back-link" }, h("span", { "aria-hidden": "true" }, "← "),
          "Documents"),
        h("nav", { class: "tabs", "aria-label": "Document views" },
          h("a", { href: `#/d/${docId}`, "aria-current": "page" }, "Edit"),
          h("a", { href: `#/d/${docId}/history` }, "History"))),
      h("div", { class: "doc-title-row" }, h("div", {}, title, kind), people),
      status),
    readOnly, message, notices, conflicts, layout));

  let editor = null;
  let sync = null;
  let panel = null;
  const trail = new DocumentTrail({ api, wire, docId });
  window.coedit.trail = trail;
  let stopped = false;
  let messageTimer = null;
  const showMessage = (text) => {
    message.textContent = text;
    clearTimeout(messageTimer);
    messageTimer = setTimeout(() => { message.textContent = ""; }, 8000);
  };

  const render = () => {
    status.textContent = saveStatus(sync);
    status.dataset.version = String(sync.version);
    status.dataset.unsaved = String(sync.unsaved);
    people.replaceChildren(peopleHere(sync));
    const describe = editor ? editor.describe : (path) => ({ label: path, format: String });
    renderConflicts(conflicts, sync, describe);
    renderNotices(notices, sync, describe);
  };

  api.get(`/api/documents/${docId}`).then((meta) => {
    if (stopped) return;
    title.textContent = meta.title;
    document.title = `${meta.title} · coedit`;
    kind.textContent = meta.kind;
    if (meta.idea) { // a stage document goes back to its idea
      const back = root.querySelector("#back-link");
      back.href = `#/i/${encodeURIComponent(meta.idea)}`;
      back.lastChild.textContent = "Idea";
    }
    kind.className = `kind kind-${meta.kind}`;
    layout.classList.add(`layout-${meta.kind}`);
    sync = new DocumentSync(wire, meta);
    window.coedit.sync = sync;
    sync.on("failed", (error) => showMessage(`Could not open the document: ${error.message}`));
    sync.on("change", ({ cause }) => {
      if (!editor && sync.loaded) {
        const building = performance.now();
        editor = (EDITORS[meta.kind] ?? genericView)(sync, session, {
          onError: showMessage,
          sectionExtras: (path, label) => sectionComments(trail, session, { path, label, onError: showMessage }),
        });
        body.replaceChildren(editor.element);
        window.coeditMetrics.docRenderMs = performance.now() - building;
        window.coeditMetrics.docFirstRenderMs = performance.now() - started;
        root.querySelector(".doc-page").dataset.ready = "true";
      }
      render();
    });
    sync.on("applied", (ms) => window.coeditMetrics.remoteApplyMs.push(ms));
    sync.on("conflict", (c) => showMessage(`Your change to ${editor?.describe(c.path).label ?? c.path} ` +
                                           "was not saved: your text is kept in the panel below."));
    sync.open();
    panel = reviewsPanel(trail, { session, stages, getSync: () => sync });
    aside.replaceChildren(panel.element);
    trail.open().catch((error) => showMessage(`Could not load reviews and comments: ${error.message}`));
  }).catch((error) => {
    title.textContent = "Document unavailable";
    showMessage(error.message);
  });

  return () => {
    stopped = true;
    editor?.destroy();
    panel?.destroy();
    trail.close();
    sync?.close();
  };
}
