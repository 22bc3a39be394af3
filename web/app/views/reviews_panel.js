// The reviews of one document, beside its editor: who reviews it, in which state, by when
// (an overdue review says so in words and with a marked edge, never by colour alone), and the
// moves the signed-in user may make: an analyst asks for a review and withdraws one they
// asked for; the assigned reviewer starts, requests changes (with a note) or approves. The
// server decides in the end; a refusal is written out here, e.g. why approval must wait.

import { h, icon, dateOf, timeOf } from "../dom.js";
import { isFinal, isOverdue } from "../review_trail.js";
import { avatar } from "./people.js";

export const STATUS_LABELS = {
  assigned: "Waiting to start",
  in_progress: "In review",
  changes_requested: "Changes requested",
  approved: "Approved",
  withdrawn: "Withdrawn",
};

const DAY_MS = 24 * 60 * 60 * 1000;

function overdueText(review, now) {
  const days = Math.floor((now - Date.parse(review.due)) / DAY_MS);
  const late = days >= 1 ? `${days} day${days > 1 ? "s" : ""} late` : "due time passed";
  return `Overdue: was due ${dateOf(review.due)}, ${late}`;
}

// What the signed-in user may do with a review (the server's rules, PROTOCOL section 11).
export function reviewMoves(review, user) {
  if (!user || isFinal(review)) return [];
  const admin = user.roles.includes("admin");
  const isReviewer = admin || (user.roles.includes("reviewer") && review.reviewer.id === user.id);
  const isAssigner = admin || (user.roles.includes("analyst") && review.assigned_by.id === user.id);
  const moves = [];
  if (isReviewer && ["assigned", "changes_requested"].includes(review.status)) moves.push("in_progress");
  if (isReviewer && review.status === "in_progress") moves.push("changes_requested", "approved");
  if (isAssigner) moves.push("withdrawn");
  return moves;
}

const MOVE_LABELS = { in_progress: "Start review", approved: "Approve",
                      changes_requested: "Request changes", withdrawn: "Withdraw" };

// Every distinct person the page knows of right now (on this document or on any stage), for
// suggesting a reviewer: the server has no directory of people to ask.
function knownPeople(sync, stages, me) {
  const people = new Map();
  for (const entry of sync?.presence.values() ?? []) people.set(entry.user.id, entry.user);
  for (const kind of ["memo", "normalization", "valuation", "monitoring"]) {
    for (const user of stages?.people(kind) ?? []) people.set(user.id, user);
  }
  people.delete(me?.id);
  return [...people.values()].sort((a, b) => a.name.localeCompare(b.name));
}

export function reviewsPanel(trail, { session, getSync, stages }) {
  const user = session.signedIn ? session.user : null;
  // An idea's reviews (views/idea_page.js) span its documents: asking happens on a document,
  // and comment threads are counted there.
  const perIdea = trail.openThreadCount === null;
  const mayRequest = !perIdea && Boolean(user?.roles.some((r) => r === "analyst" || r === "admin"));
  const message = h("p", { class: "panel-message", role: "alert", id: "review-message" });
  const summary = h("p", { class: "hint", id: "thread-summary" });
  const list = h("ul", { class: "review-list", id: "review-list" });
  const people = h("datalist", { id: "reviewer-suggestions" });
  const openNotes = new Map(); // review id -> the "request changes" note being written
  let messageTimer = null;

  const say = (text) => {
    message.textContent = text;
    clearTimeout(messageTimer);
    if (text) messageTimer = setTimeout(() => { message.textContent = ""; }, 12000);
  };

  const refused = (error, what) => {
    if (error.code === "invalid_transition" && error.body?.open_threads) {
      const n = error.body.open_threads;
      return `Cannot approve yet: ${n} comment thread${n > 1 ? "s are" : " is"} still open. ` +
        "Resolve or discuss them first.";
    }
    if (error.code === "forbidden") return `${what}: your role does not allow this.`;
    return `${what}: ${error.message}`;
  };

  let form = null;
  if (mayRequest) {
    const name = h("input", { name: "reviewer_name", id: "reviewer-name", required: true, maxlength: "200",
                              list: "reviewer-suggestions", autocomplete: "off" });
    const id = h("input", { name: "reviewer_id", id: "reviewer-id", required: true, maxlength: "200",
                            "aria-describedby": "reviewer-id-hint",
                            autocomplete: "off", spellcheck: false });
    const due = h("input", { type: "date", name: "due", id: "review-due" });
    name.addEventListener("input", () => {
      const match = knownPeople(getSync(), stages, user).find((p) => p.name === name.value.trim());
      if (match) id.value = match.id;
    });
    name.addEventListener("focus", () => {
      people.replaceChildren(...knownPeople(getSync(), stages, user).map((p) => h("option", { value: p.name })));
    });
    form = h("form", { class: "request-review", id: "request-review", onsubmit: async (event) => {
      event.preventDefault();
      // A date means the end of that day where the user is; the server keeps the instant.
      const dueAt = due.value ? new Date(`${due.value}T23:59:59`).toISOString() : null;
      const submit = form.querySelector("button[type=submit]");
      submit.disabled = true;
      try {
        await trail.requestReview({ id: id.value.trim(), name: name.value.trim() }, dueAt);
        say("");
        form.reset();
      } catch (error) {
        say(refused(error, "The review was not requested"));
      } finally {
        submit.disabled = false;
      }
    } },
      h("h3", {}, "Ask for a review"),
      h("label", {}, "Reviewer", name),
      h("label", {}, "Reviewer id", id),
      h("p", { class: "hint", id: "reviewer-id-hint" },
        "Filled in when you pick someone who is on a document now; otherwise ask them for it."),
      h("label", {}, "Due date", due),
      h("button", { type: "submit", class: "primary" }, "Request review"));
  }

  async function move(review, to, note) {
    try {
      await trail.moveReview(review.id, to, note);
      openNotes.delete(review.id);
      say("");
      render();
    } catch (error) {
      say(refused(error, `${MOVE_LABELS[to]} did not go through`));
    }
  }

  function noteForm(review) {
    const note = h("textarea", { name: "note", rows: 3, "aria-required": "true", maxlength: "10000",
                                 id: `note-${review.id}` });
    note.value = openNotes.get(review.id) ?? "";
    note.addEventListener("input", () => openNotes.set(review.id, note.value));
    return h("form", { class: "note-form", onsubmit: (event) => {
      event.preventDefault();
      if (!note.value.trim()) {
        say("Say what should change: a note is required to send the document back.");
        note.focus();
        return;
      }
      move(review, "changes_requested", note.value.trim());
    } },
      h("label", {}, "What should change", note),
      h("div", { class: "actions" },
        h("button", { type: "submit", class: "primary" }, "Send back with note"),
        h("button", { type: "button", onclick: () => { openNotes.delete(review.id); render(); } }, "Cancel")));
  }

  function card(review, now) {
    const overdue = isOverdue(review, now);
    const moves = reviewMoves(review, user);
    const who = review.reviewer.name ?? review.reviewer.id;
    const actions = moves.map((to) => h("button", {
      type: "button", class: to === "approved" ? "primary small" : to === "withdrawn" ? "danger small" : "small",
      dataset: { move: to }, "aria-label": `${MOVE_LABELS[to]}: review by ${who}`,
      onclick: () => {
        if (to === "changes_requested") {
          openNotes.set(review.id, "");
          render();
          document.getElementById(`note-${review.id}`)?.focus();
        } else {
          move(review, to);
        }
      } }, MOVE_LABELS[to]));
    return h("li", { class: `review ${overdue ? "overdue" : ""}`,
                     dataset: { id: review.id, status: review.status, overdue: String(overdue) } },
      h("div", { class: "review-head" },
        avatar({ id: review.reviewer.id, name: who }),
        h("div", { class: "review-who" },
          h("strong", {}, who),
          h("small", {}, perIdea && review.stage
            ? h("a", { href: `#/d/${encodeURIComponent(review.doc)}`, "aria-label": `Open the ${review.stage} under review` },
              review.stage) : null,
          `${perIdea && review.stage ? " · " : ""}asked by ${review.assigned_by.name ?? review.assigned_by.id}`)),
        h("span", { class: `status-badge status-${review.status}` }, STATUS_LABELS[review.status] ?? review.status)),
      overdue ? h("p", { class: "overdue-note" }, icon("alert"), overdueText(review, now))
        : review.due ? h("p", { class: "due" }, icon("clock"), `Due ${dateOf(review.due)}`) : null,
      review.note ? h("p", { class: "review-note" }, h("span", { class: "label" }, "Note: "), review.note) : null,
      h("p", { class: "review-time" }, `Updated ${timeOf(review.updated_at)}`),
      openNotes.has(review.id) ? noteForm(review)
        : actions.length ? h("div", { class: "actions" }, actions) : null);
  }

  function renderSummary() {
    if (perIdea) {
      summary.textContent = "Reviews of every document of this idea; comments are on each document.";
      return;
    }
    const open = trail.openThreadCount();
    summary.textContent = open ? `${open} open comment thread${open > 1 ? "s" : ""} on this document`
      : "No open comment threads";
    summary.dataset.open = String(open);
  }

  function render() {
    const now = Date.now();
    const reviews = trail.reviewList();
    renderSummary();
    const focused = list.contains(document.activeElement) ? document.activeElement.id : null;
    list.replaceChildren(...(reviews.length ? reviews.map((r) => card(r, now))
      : [h("li", { class: "empty" }, "No reviews yet.")]));
    if (focused) document.getElementById(focused)?.focus();
  }

  const element = h("section", { class: "panel reviews-panel", id: "reviews", "aria-labelledby": "reviews-title" },
    h("h2", { id: "reviews-title" }, "Reviews"), summary, message, list, form, people);
  const stop = trail.on("change", ({ cause }) => {
    // Comments change only the count of open threads; reviews redraw the cards.
    if (cause === "comment") renderSummary();
    else render();
  });
  // Overdue is a matter of time passing too, not only of changes (but keep a note being written).
  const tick = setInterval(() => { if (!openNotes.size) render(); }, 60000);
  render();
  return { element, destroy: () => { stop(); clearInterval(tick); } };
}
