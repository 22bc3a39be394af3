// The ideas of the team (PROTOCOL section 10), newest first: the workbench's front page. Pages
// of 500 come one after another and the table grows as they arrive, so the first screen is up
// after the first page. Typing in the filter asks the server (`q` matches words of the title
// and the ticker) after a short pause; rows are built once per idea and only re-attached.

import { h, timeOf } from "../dom.js";

const PAGE = 500;
const MOST = 5000;
const FILTER_PAUSE_MS = 200;

export function renderIdeaList(root, { api, session, onOpen }) {
  const status = h("p", { class: "list-status", role: "status", id: "idea-status" }, "Loading…");
  const body = h("tbody", { id: "idea-list" });
  const rows = new Map(); // id -> its row
  const rowOf = (idea) => rows.get(idea.id) ?? rows.set(idea.id, buildRow(idea)).get(idea.id);
  const buildRow = (idea) => h("tr", { dataset: { id: idea.id } },
    h("td", {}, h("a", { href: `#/i/${encodeURIComponent(idea.id)}`, class: "doc-link idea-link" }, idea.title)),
    h("td", {}, idea.ticker ? h("span", { class: "ticker" }, idea.ticker)
      : h("span", { class: "hint" }, "no ticker")),
    h("td", {}, idea.created_by?.name ?? ""),
    h("td", {}, h("time", { datetime: idea.created_at }, timeOf(idea.created_at))));
  let generation = 0; // a newer query makes the pages of an older one worthless

  async function load(q) {
    const mine = ++generation;
    const started = performance.now();
    let ideas = [];
    let cursor = null;
    let first = true;
    status.textContent = "Loading…";
    do {
      const params = new URLSearchParams({ limit: String(PAGE) });
      if (q) params.set("q", q);
      if (cursor) params.set("cursor", cursor);
      const page = await api.get(`/api/ideas?${params}`);
      if (mine !== generation) return;
      ideas = ideas.concat(page.items);
      const drawing = performance.now();
      body.replaceChildren(...ideas.map(rowOf));
      window.coeditMetrics.ideaListRenderMs = performance.now() - drawing;
      if (first) window.coeditMetrics.ideaListFirstPaintMs = performance.now() - started;
      first = false;
      cursor = page.next;
      status.textContent = `${ideas.length}${cursor ? "+" : ""} idea${ideas.length === 1 ? "" : "s"}` +
        (q ? ` matching “${q}”` : "");
    } while (cursor && ideas.length < MOST);
    if (!ideas.length) {
      status.textContent = q ? `No idea matches “${q}”.` : "No ideas yet: start one above.";
    }
    window.coeditMetrics.ideaListAllMs = performance.now() - started;
    window.coeditMetrics.ideaListCount = ideas.length;
    const section = root.querySelector(".ideas");
    if (section) section.dataset.loaded = q ? `q:${q}` : "all";
  }

  let pause = null;
  const filter = h("input", { type: "search", id: "idea-filter", maxlength: "200",
    placeholder: "Filter by title or ticker", "aria-controls": "idea-list",
    oninput: () => {
      clearTimeout(pause);
      pause = setTimeout(() => load(filter.value.trim()).catch(fail), FILTER_PAUSE_MS);
    } });
  const fail = (error) => { status.textContent = `The ideas could not be loaded: ${error.message}`; };

  const create = session.mayEdit() ? h("form", { id: "create-idea", class: "create",
    onsubmit: async (event) => {
      event.preventDefault();
      const form = new FormData(event.target);
      const ticker = String(form.get("ticker") ?? "").trim();
      try {
        const idea = await api.post("/api/ideas", { title: form.get("title"), ...(ticker ? { ticker } : {}) });
        onOpen(idea.id);
      } catch (e) { status.textContent = `The idea was not created: ${e.message}`; }
    } },
    h("label", { class: "grow" }, h("span", { class: "visually-hidden" }, "Idea title"),
      h("input", { name: "title", required: true, maxlength: "200",
                   placeholder: "New idea, e.g. ACME: margin recovery" })),
    h("label", {}, h("span", { class: "visually-hidden" }, "Ticker"),
      h("input", { name: "ticker", maxlength: "32", placeholder: "Ticker", class: "ticker-input" })),
    h("button", { class: "primary", type: "submit" }, "New idea")) : null;

  root.replaceChildren(h("section", { class: "ideas", "aria-labelledby": "ideas-title" },
    h("div", { class: "page-head" },
      h("div", {},
        h("h1", { id: "ideas-title" }, "Ideas"),
        h("p", { class: "hint" }, "Each idea holds its memo, normalization, valuation and monitoring, ",
          "its reviews and its workflow. ", h("a", { href: "#/documents" }, "All documents"))),
      h("label", { class: "filter" }, h("span", { class: "visually-hidden" }, "Filter ideas"), filter)),
    create,
    h("table", { class: "doc-table" },
      h("caption", { class: "visually-hidden" }, "Ideas, newest first"),
      h("thead", {}, h("tr", {}, ["Idea", "Ticker", "Started by", "Started"].map(
        (t) => h("th", { scope: "col" }, t)))),
      body),
    status));

  load("").catch(fail);
  return () => { generation += 1; clearTimeout(pause); };
}
