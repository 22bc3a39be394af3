// The idea's workflow (PROTOCOL section 13): its steps grouped by the seven step states, each
// step with the verbs the signed-in user's role and the step allow, the instance's pause,
// resume and cancel for its creator and admins, and a way to start one from a published
// template when the idea has none running. The buttons are a hint: the server decides, and a
// refusal (`invalid_transition`, `forbidden`, `bad_request`) is written out in words, never
// swallowed. What the user is typing (a checklist being ticked, a reason) is kept while other
// people's moves redraw the panel.

import { h, icon, timeOf } from "../dom.js";
import { avatar } from "./people.js";

export const STEP_STATES = [
  ["in_progress", "In progress"], ["ready", "Ready"], ["blocked", "Blocked"], ["failed", "Failed"],
  ["pending", "Waiting on earlier steps"], ["completed", "Completed"], ["skipped", "Skipped"],
];
const STATE_LABEL = Object.fromEntries(STEP_STATES);
export const ACTION_LABELS = { checklist: "Checklist", approval: "Approval", review: "Review",
                               document: "Document" };
const VERB_LABELS = { claim: "Claim", start: "Start", complete: "Complete", fail: "Fail",
                      block: "Block", unblock: "Unblock", skip: "Skip", retry: "Retry" };
const STATUS_LABELS = { active: "Running", paused: "Paused", completed: "Completed",
                        canceled: "Canceled" };
// Verbs that open a form (they need a payload) rather than acting at once.
const WITH_FORM = new Set(["complete", "fail", "block", "skip"]);

// What the user may try on a step (the server's rules, PROTOCOL section 13).
export function stepVerbs(step, instance, user) {
  if (!user || instance.status !== "active") return [];
  const admin = user.roles.includes("admin");
  const hasRole = admin || user.roles.includes(step.role);
  const mine = admin || !step.assignee || step.assignee.id === user.id;
  const byHand = step.action === "checklist" || step.action === "approval";
  const verbs = [];
  if (step.state === "ready" && hasRole && step.assignee?.id !== user.id) verbs.push("claim");
  if (step.state === "ready" && hasRole && mine) verbs.push("start");
  if (step.state === "in_progress" && hasRole && mine) {
    if (byHand) verbs.push("complete");
    verbs.push("block", "fail");
  }
  if (step.state === "blocked" && hasRole) verbs.push("unblock");
  if (step.state === "failed" && admin) verbs.push("retry");
  if (admin && !["completed", "skipped"].includes(step.state)) verbs.push("skip");
  return verbs;
}

function refusal(error, what) {
  if (error.code === "invalid_transition") {
    const state = error.body?.state;
    const now = state ? ` (the step is ${(STATE_LABEL[state] ?? state).toLowerCase()})` : "";
    return `${what} was refused: ${error.message}${now}.`;
  }
  if (error.code === "forbidden") return `${what} was refused: your role does not allow it. ${error.message}`;
  if (error.code === "bad_request") return `${what} needs more: ${error.message}`;
  return `${what} did not go through: ${error.message}`;
}

function configSummary(step) {
  if (step.action === "checklist") return `${step.config.items.length} item checklist`;
  if (step.action === "review") return `done when the ${step.config.stage} review is approved`;
  if (step.action === "document") return `done when the idea has a ${step.config.stage}`;
  return "approve or reject";
}

export function workflowPanel(room, { api, session }) {
  const user = session.signedIn ? session.user : null;
  const mayStart = session.mayEdit();
  const message = h("p", { class: "panel-message", role: "alert", id: "workflow-message" });
  const body = h("div", { class: "workflow-body" });
  const forms = new Map(); // step id -> {verb, checked: Set, reason, approved, comment}
  const busy = new Set();  // step ids with a move in flight
  let templates = null;    // published templates, loaded when the start form is first shown
  let messageTimer = null;

  const say = (text, tone = "bad") => {
    message.textContent = text;
    message.dataset.tone = tone;
    clearTimeout(messageTimer);
    if (text) messageTimer = setTimeout(() => { message.textContent = ""; }, 15000);
  };

  async function act(step, verb, payload = {}) {
    busy.add(step.id);
    render();
    try {
      await room.moveStep(step, verb, payload);
      forms.delete(step.id);
      say("");
    } catch (error) {
      say(refusal(error, `${VERB_LABELS[verb]} “${step.title}”`));
    } finally {
      busy.delete(step.id);
      render();
    }
  }

  function verbButton(step, verb) {
    const id = `step-${step.id}-${verb}`;
    return h("button", {
      type: "button", id, dataset: { verb }, disabled: busy.has(step.id),
      class: verb === "start" || verb === "complete" ? "primary small"
        : ["fail", "skip"].includes(verb) ? "danger small" : "small",
      "aria-label": `${VERB_LABELS[verb]}: ${step.title}`,
      onclick: () => {
        if (WITH_FORM.has(verb)) {
          forms.set(step.id, { verb, checked: new Set(), reason: "", approved: null, comment: "" });
          render();
          document.querySelector(`#form-${CSS.escape(step.id)} input, #form-${CSS.escape(step.id)} textarea`)?.focus();
        } else {
          act(step, verb);
        }
      } }, VERB_LABELS[verb]);
  }

  function stepForm(step, draft) {
    const fields = [];
    if (draft.verb === "complete" && step.action === "checklist") {
      fields.push(h("fieldset", { class: "checklist" }, h("legend", {}, "Tick every item to complete"),
        step.config.items.map((item, n) => h("label", { class: "check" },
          h("input", { type: "checkbox", checked: draft.checked.has(item), dataset: { item },
                       id: `check-${step.id}-${n}`,
                       onchange: (e) => { if (e.target.checked) draft.checked.add(item); else draft.checked.delete(item); } }),
          h("span", {}, item)))));
    } else if (draft.verb === "complete" && step.action === "approval") {
      const choice = (value, label) => h("label", { class: "check" },
        h("input", { type: "radio", name: `approve-${step.id}`, value: String(value), checked: draft.approved === value,
                     id: `approve-${step.id}-${value}`,
                     onchange: () => { draft.approved = value; } }), h("span", {}, label));
      fields.push(h("fieldset", { class: "checklist" }, h("legend", {}, "Decision"),
        choice(true, "Approve"), choice(false, "Reject (the step fails)")));
      const comment = h("textarea", { rows: 2, maxlength: "2000", name: "comment", id: `comment-${step.id}` });
      comment.value = draft.comment;
      comment.addEventListener("input", () => { draft.comment = comment.value; });
      fields.push(h("label", {}, "Comment (optional)", comment));
    } else {
      const reason = h("textarea", { rows: 2, maxlength: "2000", name: "reason", "aria-required": "true",
                                     id: `reason-${step.id}` });
      reason.value = draft.reason;
      reason.addEventListener("input", () => { draft.reason = reason.value; });
      fields.push(h("label", {}, draft.verb === "block" ? "What is it waiting for?" : "Reason", reason));
    }
    return h("form", { class: "step-form", id: `form-${step.id}`, dataset: { verb: draft.verb },
      onsubmit: (event) => {
        event.preventDefault();
        let payload;
        if (draft.verb === "complete" && step.action === "checklist") {
          payload = { checked: step.config.items.filter((i) => draft.checked.has(i)) };
        } else if (draft.verb === "complete") {
          if (draft.approved === null) { say("Choose approve or reject first."); return; }
          payload = { approved: draft.approved, ...(draft.comment.trim() ? { comment: draft.comment.trim() } : {}) };
        } else {
          if (!draft.reason.trim()) { say("Say why: a reason is required."); event.target.querySelector("textarea")?.focus(); return; }
          payload = { reason: draft.reason.trim() };
        }
        act(step, draft.verb, payload);
      } },
      fields,
      h("div", { class: "actions" },
        h("button", { type: "submit", class: draft.verb === "complete" ? "primary small" : "danger small",
                      id: `submit-${step.id}`,
                      disabled: busy.has(step.id) }, `${VERB_LABELS[draft.verb]} step`),
        h("button", { type: "button", class: "small", id: `cancel-${step.id}`,
                      onclick: () => { forms.delete(step.id); render(); } }, "Cancel")));
  }

  function stepCard(step, instance, byKey) {
    const verbs = stepVerbs(step, instance, user);
    const draft = forms.get(step.id);
    const after = step.after.map((k) => byKey.get(k)?.title ?? k);
    const note = step.data?.reason ?? (step.data?.comment ? `“${step.data.comment}”` : null);
    return h("li", { class: `step step-${step.state}`, dataset: { key: step.key, state: step.state, id: step.id } },
      h("div", { class: "step-head" },
        h("strong", { class: "step-title" }, step.title),
        h("span", { class: `step-badge state-${step.state}` }, STATE_LABEL[step.state] ?? step.state)),
      h("p", { class: "step-meta" },
        h("span", { class: "action-tag" }, ACTION_LABELS[step.action] ?? step.action),
        h("span", {}, `for ${step.role}`),
        h("span", {}, configSummary(step)),
        step.required ? null : h("span", { class: "optional-tag" }, "optional")),
      after.length ? h("p", { class: "step-after" }, `After: ${after.join(", ")}`) : null,
      h("p", { class: "step-who" }, step.assignee
        ? [avatar(step.assignee), h("span", {}, step.assignee.id === user?.id ? `${step.assignee.name} (you)` : step.assignee.name)]
        : h("span", { class: "hint" }, step.state === "completed" && !["checklist", "approval"].includes(step.action)
          ? "Completed by itself" : "Unassigned"),
        step.completed_at ? h("small", {}, ` · done ${timeOf(step.completed_at)}`)
          : step.started_at ? h("small", {}, ` · started ${timeOf(step.started_at)}`) : null),
      note ? h("p", { class: "step-note" }, h("span", { class: "label" }, step.state === "blocked" ? "Blocked: " : "Note: "), note) : null,
      draft ? stepForm(step, draft) : verbs.length ? h("div", { class: "actions" }, verbs.map((v) => verbButton(step, v))) : null);
  }

  async function setStatus(instance, status, label) {
    if (status === "canceled" && !window.confirm("Cancel this workflow? A canceled workflow cannot be resumed.")) return;
    try {
      await room.setStatus(instance, status);
      say("");
    } catch (error) {
      say(refusal(error, label));
    }
    render();
  }

  function instanceControls(instance) {
    const mayControl = user && (user.roles.includes("admin") || instance.created_by?.id === user.id);
    if (!mayControl) return null;
    const buttons = [];
    if (instance.status === "active") buttons.push(["paused", "Pause", "small"]);
    if (instance.status === "paused") buttons.push(["active", "Resume", "primary small"]);
    if (instance.status === "active" || instance.status === "paused") buttons.push(["canceled", "Cancel workflow", "danger small"]);
    return buttons.length ? h("div", { class: "actions instance-actions" }, buttons.map(([to, label, cls]) =>
      h("button", { type: "button", class: cls, id: `instance-${to}`, onclick: () => setStatus(instance, to, label) }, label)))
      : null;
  }

  function startForm(again) {
    if (!mayStart) return again ? null : h("p", { class: "hint" }, "An analyst or an admin starts one from a published template.");
    if (templates === null) {
      templates = [];
      api.get("/api/workflows/templates?status=published&limit=100").then((page) => {
        templates = page.items;
        render();
      }).catch((error) => say(`Templates could not be loaded: ${error.message}`));
    }
    const select = h("select", { id: "start-template", name: "template", required: true },
      templates.length ? templates.map((t) => h("option", { value: t.id }, `${t.name} (v${t.version}, ${t.steps.length} steps)`))
        : h("option", { value: "" }, "No published template yet"));
    return h("form", { class: "start-workflow", id: "start-workflow", onsubmit: async (event) => {
      event.preventDefault();
      if (!select.value) { say("There is no published template to start: an admin builds one under Templates."); return; }
      try {
        await room.startWorkflow(select.value);
        say("");
      } catch (error) {
        say(refusal(error, "Starting the workflow"));
      }
    } },
      h("label", { class: "grow" }, again ? "Start another workflow" : "Start a workflow from a template", select),
      h("button", { type: "submit", class: "primary", disabled: !templates.length }, "Start workflow"));
  }

  function render() {
    const instance = room.currentWorkflow();
    const focused = body.contains(document.activeElement) ? document.activeElement.id : null;
    const caret = focused && document.activeElement.tagName === "TEXTAREA" ? document.activeElement.selectionStart : null;
    if (!instance) {
      body.replaceChildren(...[h("p", { class: "empty-flow" }, "No workflow on this idea yet."), startForm(false)]
        .filter(Boolean));
    } else {
      const byKey = new Map(instance.steps.map((s) => [s.key, s]));
      const done = instance.steps.filter((s) => ["completed", "skipped"].includes(s.state)).length;
      const groups = STEP_STATES.map(([state, label]) => {
        const steps = instance.steps.filter((s) => s.state === state);
        return h("section", { class: `step-group group-${state}`, dataset: { state, count: String(steps.length) },
                              "aria-labelledby": `group-${state}` },
          h("h3", { id: `group-${state}` }, label, h("span", { class: "group-count", "aria-label": `${steps.length} steps` }, String(steps.length))),
          steps.length ? h("ul", { class: "steps" }, steps.map((s) => stepCard(s, instance, byKey))) : null);
      });
      const ended = instance.status === "completed" || instance.status === "canceled";
      body.replaceChildren(...[
        h("div", { class: "flow-head" },
          h("div", {},
            h("p", { class: "flow-name" }, instance.template.name, h("small", {}, ` · template v${instance.template.version}`)),
            h("p", { class: "hint" }, `Started by ${instance.created_by?.name ?? "someone"} · ${done} of ${instance.steps.length} steps done`)),
          h("span", { class: `status-badge flow-status flow-${instance.status}`, id: "flow-status",
                      dataset: { status: instance.status } },
            instance.status === "paused" ? icon("clock") : instance.status === "completed" ? icon("check") : null,
            STATUS_LABELS[instance.status] ?? instance.status),
          instanceControls(instance)),
        h("div", { class: "progress", role: "progressbar", "aria-label": "Steps done",
                   "aria-valuemin": "0", "aria-valuemax": String(instance.steps.length), "aria-valuenow": String(done) },
          h("span", { style: `width: ${instance.steps.length ? (100 * done) / instance.steps.length : 0}%` })),
        instance.status === "paused" ? h("p", { class: "paused-note" }, icon("clock"),
          "Paused: no step moves until the workflow is resumed.") : null,
        h("div", { class: "step-groups" }, groups),
        ended ? startForm(true) : null].filter(Boolean)); // replaceChildren would write "null"
      body.dataset.instance = instance.id;
    }
    // Other people's moves redraw the panel: the user keeps their place, caret included.
    if (focused) {
      const again = document.getElementById(focused);
      again?.focus();
      if (again && caret !== null && "setSelectionRange" in again) again.setSelectionRange(caret, caret);
    }
  }

  const element = h("section", { class: "panel workflow-panel", id: "workflow", "aria-labelledby": "workflow-title" },
    h("h2", { id: "workflow-title" }, "Workflow"), message, body);
  const stop = room.on("change", ({ cause }) => { if (cause !== "presence") render(); });
  render();
  return { element, destroy: stop };
}
