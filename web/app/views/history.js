// A document's past: its events (who, when, what) as a timeline; choosing one shows the
// document as it was at that version (`GET /api/documents/{id}?version=N`), and the hash
// chain can be verified (`/verify`) with the result shown in words.

import { h, timeOf } from "../dom.js";
import { sectionsOf } from "../memo.js";
import { ASSUMPTIONS } from "../dcf.js";
import { valueAt } from "../json_patch.js";
import { figuresTable, formatAssumption } from "./valuation_table.js";

const VERBS = {
  "document.created": "created the document",
  "lock.acquired": "took a lock",
  "lock.released": "released a lock",
  "lock.expired": "lock expired",
  "lock.stolen": "took over a lock",
  "document.archived": "archived the document",
  "access.denied": "was refused",
};

// Words for a place in the document, from the state it had then.
function placeName(path, state) {
  const section = /^\/sections\/([^/]+)(?:\/(title|text))?/.exec(path);
  if (section) {
    const title = state?.sections?.[section[1]]?.title ?? section[1];
    return section[2] === "title" ? `title of ${title}` : title;
  }
  const cell = ASSUMPTIONS.find((a) => path === `/assumptions/${a.key}`);
  if (cell) return cell.label;
  if (path === "/order") return "section order";
  return path || "the whole document";
}

function describeChange(event, stateAfter) {
  const data = event.data ?? {};
  if (event.type !== "patch.applied") {
    const where = data.path !== undefined ? ` on ${placeName(data.path, stateAfter)}` : "";
    return `${VERBS[event.type] ?? event.type}${where}`;
  }
  const parts = [];
  const splices = new Map();
  for (const op of data.ops ?? []) {
    if (op.op === "splice") {
      const tally = splices.get(op.path) ?? { added: 0, removed: 0 };
      tally.added += Array.from(op.insert).length;
      tally.removed += op.remove;
      splices.set(op.path, tally);
    } else {
      const cell = ASSUMPTIONS.find((a) => op.path === `/assumptions/${a.key}`);
      if (cell && op.op === "replace") {
        parts.push(`${cell.label} ${formatAssumption(cell.unit, data.before?.[op.path])} → ` +
                   `${formatAssumption(cell.unit, op.value)}`);
      } else if (op.path.startsWith("/order")) {
        continue;
      } else {
        const verb = { add: "added", remove: "removed", replace: "changed" }[op.op] ?? op.op;
        parts.push(`${verb} ${placeName(op.path, stateAfter)}`);
      }
    }
  }
  for (const [path, { added, removed }] of splices) {
    parts.push(`${placeName(path, stateAfter)}: ${added ? `+${added}` : ""}${added && removed ? " " : ""}` +
               `${removed ? `−${removed}` : ""} characters`);
  }
  return parts.join("; ") || "edited";
}

function stateView(doc) {
  if (doc.kind === "memo") {
    return h("div", { class: "memo-static" }, sectionsOf(doc.state).map((s) =>
      h("section", {}, h("h3", {}, s.title), h("p", { class: "prose" }, s.text || "(empty)"))));
  }
  if (doc.kind === "valuation") {
    return h("div", {},
      h("table", { class: "assumptions" }, h("caption", {}, "Assumptions"),
        h("tbody", {}, ASSUMPTIONS.map((a) => h("tr", {}, h("th", { scope: "row" }, a.label),
          h("td", { class: "num" }, formatAssumption(a.unit, valueAt(doc.state, `/assumptions/${a.key}`))))))),
      figuresTable(doc.state));
  }
  return h("pre", { class: "raw-state" }, JSON.stringify(doc.state, null, 2));
}

export function renderHistory(root, { api, docId }) {
  const title = h("h1", { id: "doc-title" }, "History");
  const timeline = h("ol", { class: "timeline", id: "timeline", "aria-label": "Changes, newest first" });
  const snapshot = h("div", { class: "snapshot", id: "snapshot", tabindex: "-1" },
    h("p", { class: "hint" }, "Choose a change on the left to see the document as it was."));
  const verdict = h("p", { class: "verdict", id: "verify-result", role: "status" });
  const more = h("button", { type: "button", hidden: true }, "Load more changes");
  root.replaceChildren(h("article", { class: "doc-page history" },
    h("div", { class: "doc-head" },
      h("div", { class: "doc-title-row" },
        h("a", { href: "#/documents", class: "back" }, h("span", { "aria-hidden": "true" }, "← "), "Documents"),
        h("nav", { class: "tabs", "aria-label": "Document views" },
          h("a", { href: `#/d/${docId}` }, "Edit"),
          h("a", { href: `#/d/${docId}/history`, "aria-current": "page" }, "History"))),
      h("div", { class: "doc-title-row" }, title,
        h("div", { class: "verify" },
          h("button", { type: "button", id: "verify", onclick: verify }, "Verify hash chain"),
          verdict))),
    h("div", { class: "history-grid" },
      h("section", { "aria-labelledby": "timeline-title" },
        h("h2", { id: "timeline-title" }, "Timeline"), timeline, more),
      h("section", { "aria-labelledby": "snapshot-title" },
        h("h2", { id: "snapshot-title" }, "As it was"), snapshot))));

  let meta = null;
  let events = [];
  let cursor = null;
  let chosen = null;

  async function verify() {
    verdict.textContent = "Verifying…";
    verdict.className = "verdict";
    try {
      const result = await api.get(`/api/documents/${docId}/verify`);
      verdict.className = `verdict ${result.ok ? "ok" : "bad"}`;
      verdict.replaceChildren(h("span", { "aria-hidden": "true" }, result.ok ? "✔ " : "✘ "),
        result.ok ? `Hash chain intact: ${result.events} events verified.`
          : `Hash chain broken at event ${result.seq} (after ${result.events} good events).`);
    } catch (error) {
      verdict.className = "verdict bad";
      verdict.textContent = `Could not verify: ${error.message}`;
    }
  }

  async function show(version, button) {
    chosen?.setAttribute("aria-pressed", "false");
    chosen = button;
    button.setAttribute("aria-pressed", "true");
    snapshot.replaceChildren(h("p", { class: "hint" }, "Loading…"));
    try {
      const doc = await api.get(`/api/documents/${docId}?version=${version}`);
      snapshot.replaceChildren(
        h("p", { class: "as-of", id: "as-of" }, `Version ${doc.version} of ${meta?.version ?? "?"}`,
          ` · ${timeOf(doc.updated_at)}`),
        stateView(doc));
      snapshot.dataset.version = String(doc.version);
    } catch (error) {
      snapshot.replaceChildren(h("p", { class: "page-message" }, error.message));
    }
  }

  function renderTimeline() {
    timeline.replaceChildren(...[...events].reverse().map((event) => {
      const versioned = event.version !== null && event.version !== undefined;
      const button = h("button", { type: "button", class: "event", disabled: !versioned,
                                   "aria-pressed": "false", dataset: { version: event.version ?? "" } },
        h("span", { class: "event-head" },
          versioned ? h("span", { class: "version" }, `v${event.version}`) : null,
          h("strong", {}, event.actor?.name ?? "system"),
          h("time", { datetime: event.ts }, timeOf(event.ts))),
        h("span", { class: "event-what" }, describeChange(event, meta?.state)));
      if (versioned) button.addEventListener("click", () => show(event.version, button));
      return h("li", { dataset: { type: event.type } }, button);
    }));
  }

  async function load() {
    const page = await api.get(`/api/documents/${docId}/history?limit=500` +
                               (cursor ? `&cursor=${encodeURIComponent(cursor)}` : ""));
    events = events.concat(page.events);
    cursor = page.next;
    more.hidden = !cursor;
    renderTimeline();
  }
  more.addEventListener("click", () => load());

  (async () => {
    meta = await api.get(`/api/documents/${docId}`);
    title.textContent = `History of ${meta.title}`;
    document.title = `History: ${meta.title} · coedit`;
    await load();
    root.querySelector(".history").dataset.ready = "true";
  })().catch((error) => { snapshot.replaceChildren(h("p", { class: "page-message" }, error.message)); });
  return () => {};
}
