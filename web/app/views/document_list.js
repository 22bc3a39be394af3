// The documents of the team, newest first, with a filter and a form to start a new one. Pages
// of 500 are fetched one after another; the table grows as they come, so the first screen is
// up after the first page.

import { h, timeOf } from "../dom.js";
import { starterMemo } from "../memo.js";
import { starterValuation } from "../dcf.js";

const KIND_LABELS = { memo: "Memo", valuation: "Valuation", normalization: "Normalization",
                      monitoring: "Monitoring" };

export function renderDocumentList(root, { api, session, onOpen }) {
  let documents = [];
  let filter = "";
  const status = h("p", { class: "list-status", role: "status", id: "list-status" }, "Loading…");
  const body = h("tbody", { id: "list" });
  const rows = new Map(); // id -> its row, built once: filtering only re-attaches rows
  const rowOf = (doc) => rows.get(doc.id) ?? rows.set(doc.id, buildRow(doc)).get(doc.id);
  const buildRow = (doc) => h("tr", { dataset: { id: doc.id, kind: doc.kind } },
    h("td", {}, h("a", { href: `#/d/${doc.id}`, class: "doc-link" }, doc.title)),
    h("td", {}, h("span", { class: `kind kind-${doc.kind}` }, KIND_LABELS[doc.kind] ?? doc.kind)),
    h("td", { class: "num" }, String(doc.version)),
    h("td", {}, h("time", { datetime: doc.updated_at }, timeOf(doc.updated_at))));
  const render = () => {
    const started = performance.now();
    const shown = filter
      ? documents.filter((d) => `${d.title} ${d.kind}`.toLowerCase().includes(filter))
      : documents;
    body.replaceChildren(...shown.map(rowOf));
    status.textContent = documents.length === 0 ? "No documents yet: start one above."
      : `${shown.length} of ${documents.length} documents`;
    window.coeditMetrics.listRenderMs = performance.now() - started;
  };
  const create = session.mayEdit() ? h("form", { id: "create", class: "create",
    onsubmit: async (event) => {
      event.preventDefault();
      const form = new FormData(event.target);
      const kind = form.get("kind");
      const state = kind === "memo" ? starterMemo() : kind === "valuation" ? starterValuation() : {};
      try {
        const doc = await api.post("/api/documents", { kind, title: form.get("title"), state });
        onOpen(doc.id);
      } catch (e) { status.textContent = e.message; }
    } },
    h("label", { class: "grow" }, h("span", { class: "visually-hidden" }, "Title"),
      h("input", { name: "title", required: true, maxlength: "200",
                   placeholder: "Title, e.g. ACME initiation" })),
    h("label", {}, h("span", { class: "visually-hidden" }, "Kind"),
      h("select", { name: "kind" }, Object.entries(KIND_LABELS).map(([k, label]) =>
        h("option", { value: k }, label)))),
    h("button", { class: "primary", type: "submit" }, "New document")) : null;
  root.replaceChildren(h("section", { class: "documents", "aria-labelledby": "documents-title" },
    h("div", { class: "page-head" },
      h("h1", { id: "documents-title" }, "Documents"),
      h("label", { class: "filter" }, h("span", { class: "visually-hidden" }, "Filter documents"),
        h("input", { type: "search", id: "filter", placeholder: "Filter by title or kind",
                     oninput: (e) => { filter = e.target.value.toLowerCase().trim(); render(); } }))),
    create,
    h("table", { class: "doc-table" },
      h("thead", {}, h("tr", {}, ["Title", "Kind", "Version", "Last change"].map(
        (t) => h("th", { scope: "col" }, t)))),
      body),
    status));

  let stopped = false;
  const loading = performance.now();
  (async () => {
    let cursor = null;
    do {
      const query = `/api/documents?limit=500${cursor ? `&cursor=${encodeURIComponent(cursor)}` : ""}`;
      const page = await api.get(query);
      if (stopped) return;
      documents = documents.concat(page.items);
      render();
      if (!cursor) window.coeditMetrics.listFirstPaintMs = performance.now() - loading;
      cursor = page.next;
    } while (cursor && documents.length < 5000);
    window.coeditMetrics.listAllMs = performance.now() - loading;
    window.coeditMetrics.listCount = documents.length;
    root.querySelector(".documents")?.setAttribute("data-loaded", "true");
  })().catch((e) => { status.textContent = e.message; });
  return () => { stopped = true; };
}
