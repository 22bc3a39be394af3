// One idea: its title, ticker and where it stands; a card per stage (memo, normalization,
// valuation, monitoring) with the stage's documents, who is on them right now and, for those
// who may write, a button to create a missing one; the idea's workflow (views/workflow_panel.js)
// and the reviews of all its documents (views/reviews_panel.js). The page owns the idea's
// model (idea_room.js) for as long as it is shown.

import { h, icon, timeOf } from "../dom.js";
import { STAGES } from "../stage_presence.js";
import { IdeaRoom } from "../idea_room.js";
import { starterMemo } from "../memo.js";
import { starterValuation } from "../dcf.js";
import { avatar } from "./people.js";
import { reviewsPanel } from "./reviews_panel.js";
import { workflowPanel } from "./workflow_panel.js";

const STARTERS = { memo: starterMemo, valuation: starterValuation };
const STATUS_WORDS = { active: "Workflow running", paused: "Workflow paused",
                       completed: "Workflow completed", canceled: "Workflow canceled" };

function standing(room) {
  const flow = room.currentWorkflow();
  if (!flow) return { text: "No workflow yet", tone: "none" };
  const done = flow.steps.filter((s) => s.state === "completed" || s.state === "skipped").length;
  return { text: `${STATUS_WORDS[flow.status] ?? flow.status} · ${done} of ${flow.steps.length} steps done`,
           tone: flow.status };
}

export function renderIdeaPage(root, { api, wire, session, ideaId, onOpenDoc }) {
  const room = new IdeaRoom({ api, wire, ideaId });
  window.coedit.idea = room;
  const title = h("h1", { id: "idea-title" }, "Loading…");
  const ticker = h("span", { class: "ticker", hidden: true });
  const state = h("span", { class: "idea-state", id: "idea-state" });
  const meta = h("p", { class: "hint", id: "idea-meta" });
  const message = h("p", { class: "page-message", role: "alert", id: "idea-message" });
  const stages = h("ul", { class: "stage-cards", id: "stage-cards", "aria-label": "Stages of this idea" });
  const flowHolder = h("div", { class: "flow-holder" });
  const aside = h("aside", { class: "doc-aside", "aria-label": "Reviews of this idea" });
  let messageTimer = null;
  const say = (text) => {
    message.textContent = text;
    clearTimeout(messageTimer);
    if (text) messageTimer = setTimeout(() => { message.textContent = ""; }, 12000);
  };

  root.replaceChildren(h("article", { class: "idea-page" },
    h("div", { class: "doc-head" },
      h("div", { class: "doc-title-row" },
        h("a", { href: "#/", class: "back" }, h("span", { "aria-hidden": "true" }, "← "), "Ideas")),
      h("div", { class: "doc-title-row" }, h("div", { class: "idea-heading" }, title, ticker), state),
      meta),
    message,
    h("section", { "aria-labelledby": "stages-title", class: "stages-section" },
      h("h2", { id: "stages-title", class: "section-label" }, "Stages"), stages),
    h("div", { class: "doc-layout idea-layout" }, flowHolder, aside)));

  const creating = new Set(); // stages whose document is being created
  async function create(kind, label) {
    creating.add(kind);
    renderStages();
    try {
      const doc = await room.createDocument(kind, `${room.idea.title} · ${label}`,
                                            (STARTERS[kind] ?? (() => ({})))());
      onOpenDoc(doc.id);
    } catch (error) {
      say(error.code === "forbidden" ? `Your role may not create a ${label.toLowerCase()}.`
        : `The ${label.toLowerCase()} was not created: ${error.message}`);
    } finally {
      creating.delete(kind);
      if (room.idea) renderStages();
    }
  }

  function stageCard([kind, label]) {
    const docs = room.documentsOf(kind);
    const people = room.peopleOn(kind);
    const names = people.map((p) => p.name).join(", ");
    const here = h("p", { class: "stage-here", role: "img",
                          "aria-label": `${label}: ${people.length ? `${names} here now` : "nobody here now"}` },
      people.length ? [h("span", { class: "avatars" }, people.slice(0, 5).map((p) => avatar(p))),
        h("span", {}, people.length === 1 ? `${people[0].name} is here` : `${people.length} people here`)]
        : h("span", { class: "hint" }, "Nobody here now"));
    const list = docs.length ? h("ul", { class: "stage-docs" }, docs.map((d) => h("li", {},
      h("a", { href: `#/d/${encodeURIComponent(d.id)}`, class: "stage-doc-link", id: `open-${d.id}`,
               "aria-label": `Open ${label.toLowerCase()}: ${d.title}` }, d.title),
      h("small", {}, `version ${d.version} · ${timeOf(d.updated_at)}`))))
      : h("p", { class: "stage-missing" }, `No ${label.toLowerCase()} yet`);
    const add = !docs.length && session.mayEdit() ? h("button", {
      type: "button", class: "small", disabled: creating.has(kind), dataset: { create: kind }, id: `create-${kind}`,
      onclick: () => create(kind, label) }, creating.has(kind) ? "Creating…" : `Create ${label.toLowerCase()}`) : null;
    return h("li", { class: `stage-card ${docs.length ? "has-doc" : "empty"}`, dataset: { kind, docs: String(docs.length),
                                                                                       present: String(people.length) } },
      h("div", { class: "stage-card-head" },
        h("span", { class: `kind kind-${kind}` }, label),
        docs.length ? h("span", { class: "stage-check" }, icon("check"), h("span", { class: "visually-hidden" }, "has a document"))
          : null),
      list, here, add);
  }

  // Presence changes redraw the cards often: whoever is on a card's link or button stays there.
  function renderStages() {
    const focused = stages.contains(document.activeElement) ? document.activeElement.id : null;
    stages.replaceChildren(...STAGES.map(stageCard));
    if (focused) document.getElementById(focused)?.focus();
  }

  let panel = null;
  let flow = null;
  function render(cause) {
    const idea = room.idea;
    if (!idea) return;
    title.textContent = idea.title;
    document.title = `${idea.title} · coedit`;
    ticker.textContent = idea.ticker ?? "";
    ticker.hidden = !idea.ticker;
    const { text, tone } = standing(room);
    state.textContent = text;
    state.className = `idea-state tone-${tone}`;
    meta.textContent = `Started by ${idea.created_by?.name ?? "someone"} · ${timeOf(idea.created_at)} · ` +
      `${idea.documents.length} document${idea.documents.length === 1 ? "" : "s"}`;
    renderStages();
    if (!flow) {
      flow = workflowPanel(room, { api, session });
      flowHolder.replaceChildren(flow.element);
    }
    if (!panel) {
      panel = reviewsPanel(room.reviewTrail(), { session, stages: null, getSync: () => null });
      aside.replaceChildren(panel.element);
    }
    if (cause === "loaded") root.querySelector(".idea-page").dataset.ready = "true";
  }

  const stop = room.on("change", ({ cause }) => render(cause));
  room.on("trouble", (error) => say(`Live updates are interrupted: ${error.message}`));
  room.open().catch((error) => {
    title.textContent = "Idea unavailable";
    say(error.code === "not_found" ? "There is no such idea (or it belongs to another team)."
      : error.message);
  });

  return () => {
    stop();
    flow?.destroy();
    panel?.destroy();
    room.close();
  };
}
