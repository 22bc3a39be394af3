// The workflow template builder (PROTOCOL section 13), for admins: the templates of the team
// on the left, the chosen one on the right as a list of steps to add, remove, reorder and
// configure (title, key, action and its settings, role, required, which earlier steps it
// waits for), then save as a draft and publish. Changing a published template makes it a
// draft of the next version; workflows already started keep the copy they were made from.
// The server validates: its `bad_request` is shown in words, beside the step it names.
// Others see the templates read only.

import { h, timeOf } from "../dom.js";
import { STAGES } from "../stage_presence.js";
import { WorkflowTemplates, faultOf } from "../workflow_templates.js";
import { ACTION_LABELS } from "./workflow_panel.js";

const ROLES = ["analyst", "reviewer", "admin", "bot", "viewer"];
const ACTION_HELP = {
  checklist: "The performer ticks every item to complete the step.",
  approval: "The performer approves (the step completes) or rejects (the step fails).",
  review: "Completes by itself once a review of the idea's document of this stage is approved.",
  document: "Completes by itself once the idea has a document of this stage.",
};

const slug = (text) => text.toLowerCase().normalize("NFKD").replace(/[^a-z0-9]+/g, "_")
  .replace(/^[^a-z]+/, "").replace(/_+$/, "").slice(0, 64) || "step";

function configFor(action, old) {
  if (action === "checklist") return { items: old?.items ?? [] };
  if (action === "review" || action === "document") return { stage: old?.stage ?? "memo" };
  return {};
}

export function renderTemplateBuilder(root, { api, session, templateId, onSelect }) {
  const store = new WorkflowTemplates(api);
  const admin = session.isAdmin();
  const list = h("ul", { class: "template-list", id: "template-list" });
  const editor = h("div", { class: "template-editor", id: "template-editor" });
  const message = h("p", { class: "panel-message", role: "alert", id: "template-message" });
  const saved = h("p", { class: "saved-note", role: "status", id: "template-status" });
  let templates = [];
  let current = null;    // the template as the server last answered
  let draft = null;      // what the user is building: {name, description, steps}
  let keyTouched = new Set(); // steps whose key the user typed (else it follows the title)
  let fault = null;      // {index, text} of the server's last complaint
  let stopped = false;

  const say = (text) => { message.textContent = text; };

  function loadList() {
    return store.list().then((items) => {
      if (stopped) return;
      templates = items;
      renderList();
    });
  }

  function renderList() {
    list.replaceChildren(...(templates.length ? templates.map((t) => h("li", {
      class: t.id === templateId ? "selected" : "", dataset: { id: t.id, status: t.status } },
      h("a", { href: `#/templates/${encodeURIComponent(t.id)}`, class: "template-link",
               "aria-current": t.id === templateId ? "page" : null },
        h("span", { class: "template-name" }, t.name),
        h("span", { class: `status-badge tpl-${t.status}` }, `${t.status === "published" ? "Published" : "Draft"} · v${t.version}`)),
      h("small", {}, `${t.steps.length} step${t.steps.length === 1 ? "" : "s"}`)))
      : [h("li", { class: "empty" }, "No templates yet.")]));
  }

  function take(template) {
    current = template;
    draft = { name: template.name, description: template.description ?? "",
              steps: template.steps.map((s) => ({ ...s, after: [...s.after], config: structuredClone(s.config) })) };
    keyTouched = new Set(draft.steps.map((_, n) => n));
    fault = null;
    renderEditor();
  }

  async function save({ andPublish = false } = {}) {
    const steps = draft.steps.map((s) => ({ key: s.key, title: s.title, action: s.action, role: s.role,
                                            required: s.required, after: s.after, config: s.config }));
    try {
      let answer = await store.save(current.id, { name: draft.name, description: draft.description, steps });
      if (andPublish) answer = await store.publish(current.id);
      fault = null;
      say("");
      take(answer);
      saved.textContent = andPublish ? `Published version ${answer.version}: analysts can start it now.`
        : `Saved as draft version ${answer.version}.`;
      await loadList();
    } catch (error) {
      const index = faultOf(error.message);
      fault = index === null ? null : { index, text: error.message };
      saved.textContent = "";
      say(error.code === "bad_request" ? `Not ${andPublish ? "published" : "saved"}: ${error.message}`
        : error.code === "forbidden" ? "Only an admin may change workflow templates."
          : `Not ${andPublish ? "published" : "saved"}: ${error.message}`);
      renderEditor();
      loadList().catch(() => {}); // a refused publish may follow a saved change
      if (index !== null) document.getElementById(`tstep-${index}`)?.scrollIntoView({ block: "center" });
    }
  }

  function moveStep(from, to) {
    const [step] = draft.steps.splice(from, 1);
    draft.steps.splice(to, 0, step);
    keyTouched = new Set(draft.steps.map((_, n) => n)); // a moved step keeps the key it has
    fault = null;
    renderEditor();
    document.getElementById(`tstep-${to}-${from > to ? "up" : "down"}`)?.focus()
      ?? document.getElementById(`tstep-${to}-title`)?.focus();
  }

  // A step's new key, followed by the steps that wait for it.
  function rekey(step, key) {
    for (const other of draft.steps) other.after = other.after.map((k) => (k === step.key ? key : k));
    step.key = key;
  }

  function stepEditor(step, index) {
    const n = index + 1;
    const ro = !admin;
    const title = h("input", { id: `tstep-${index}-title`, value: step.title, maxlength: "200", readonly: ro,
      oninput: (e) => {
        step.title = e.target.value;
        if (!keyTouched.has(index)) {
          rekey(step, slug(step.title));
          document.getElementById(`tstep-${index}-key`).value = step.key;
        }
      } });
    const key = h("input", { id: `tstep-${index}-key`, value: step.key, maxlength: "64", readonly: ro,
      class: "key-input", spellcheck: false, pattern: "[a-z][a-z0-9_]*",
      oninput: (e) => { rekey(step, e.target.value); keyTouched.add(index); } });
    const action = h("select", { id: `tstep-${index}-action`, disabled: ro, onchange: (e) => {
      step.action = e.target.value;
      step.config = configFor(step.action, step.config);
      renderEditor();
      document.getElementById(`tstep-${index}-action`)?.focus();
    } }, Object.entries(ACTION_LABELS).map(([value, label]) => h("option", { value, selected: value === step.action }, label)));
    const role = h("select", { id: `tstep-${index}-role`, disabled: ro, onchange: (e) => { step.role = e.target.value; } },
      ROLES.map((r) => h("option", { value: r, selected: r === step.role }, r)));
    const required = h("input", { type: "checkbox", id: `tstep-${index}-required`, checked: step.required !== false,
      disabled: ro, onchange: (e) => { step.required = e.target.checked; } });
    let config;
    if (step.action === "checklist") {
      const items = h("textarea", { id: `tstep-${index}-items`, rows: 3, readonly: ro,
        placeholder: "One item per line, e.g. Model reconciles to filings",
        oninput: (e) => { step.config = { items: e.target.value.split("\n").map((i) => i.trim()).filter(Boolean) }; } });
      items.value = (step.config.items ?? []).join("\n");
      config = h("label", { class: "grow" }, "Checklist items (one per line)", items);
    } else if (step.action === "review" || step.action === "document") {
      config = h("label", {}, step.action === "review" ? "Stage reviewed" : "Stage document",
        h("select", { id: `tstep-${index}-stage`, disabled: ro, onchange: (e) => { step.config = { stage: e.target.value }; } },
          STAGES.map(([kind, label]) => h("option", { value: kind, selected: kind === step.config.stage }, label))));
    } else {
      config = null;
    }
    const earlier = draft.steps.slice(0, index);
    const later = step.after.filter((k) => !earlier.some((s) => s.key === k));
    const after = h("fieldset", { class: "after" }, h("legend", {}, "Waits for"),
      earlier.length ? earlier.map((s, m) => h("label", { class: "check" },
        h("input", { type: "checkbox", id: `tstep-${index}-after-${m}`, checked: step.after.includes(s.key), disabled: ro,
                     onchange: (e) => {
                       step.after = e.target.checked ? [...step.after, s.key] : step.after.filter((k) => k !== s.key);
                     } }),
        h("span", {}, s.title || s.key)))
        : h("span", { class: "hint" }, "Nothing: ready as soon as the workflow starts"),
      later.length ? h("p", { class: "after-warning" }, `Also names ${later.join(", ")}, which is not an earlier step: `,
        h("button", { type: "button", class: "small", disabled: ro, onclick: () => {
          step.after = step.after.filter((k) => !later.includes(k));
          renderEditor();
        } }, "Remove")) : null);
    const faulty = fault?.index === index;
    return h("li", { class: `tstep ${faulty ? "faulty" : ""}`, id: `tstep-${index}`, dataset: { key: step.key },
                     "aria-labelledby": `tstep-${index}-label` },
      h("div", { class: "tstep-head" },
        h("span", { class: "tstep-number", id: `tstep-${index}-label` }, `Step ${n}`),
        h("label", { class: "grow" }, h("span", { class: "visually-hidden" }, `Step ${n} title`), title),
        h("label", {}, h("span", { class: "visually-hidden" }, `Step ${n} key`), key),
        admin ? h("div", { class: "tstep-tools" },
          h("button", { type: "button", class: "quiet small", id: `tstep-${index}-up`, disabled: index === 0,
                        "aria-label": `Move step ${n} (${step.title}) up`, onclick: () => moveStep(index, index - 1) }, "↑"),
          h("button", { type: "button", class: "quiet small", id: `tstep-${index}-down`,
                        disabled: index === draft.steps.length - 1,
                        "aria-label": `Move step ${n} (${step.title}) down`, onclick: () => moveStep(index, index + 1) }, "↓"),
          h("button", { type: "button", class: "danger small", id: `tstep-${index}-remove`,
                        "aria-label": `Remove step ${n} (${step.title})`, onclick: () => {
                          draft.steps.splice(index, 1);
                          for (const other of draft.steps) other.after = other.after.filter((k) => k !== step.key);
                          keyTouched = new Set([...keyTouched].filter((m) => m < index).concat(
                            [...keyTouched].filter((m) => m > index).map((m) => m - 1)));
                          fault = null;
                          renderEditor();
                        } }, "Remove")) : null),
      faulty ? h("p", { class: "tstep-fault" }, fault.text) : null,
      h("div", { class: "tstep-row" },
        h("label", {}, "Action", action),
        h("label", {}, "Performed by", role),
        h("label", { class: "check inline" }, required, h("span", {}, "Required"))),
      h("p", { class: "hint" }, ACTION_HELP[step.action] ?? ""),
      config ? h("div", { class: "tstep-row" }, config) : null,
      after);
  }

  function renderEditor() {
    if (!current) {
      editor.replaceChildren(h("div", { class: "panel empty-editor" },
        h("h2", {}, "Pick a template"), message,
        h("p", { class: "hint" }, admin ? "Choose a template on the left, or start a new one."
          : "Templates are built by admins; analysts start workflows from the published ones on an idea's page.")));
      return;
    }
    const focused = editor.contains(document.activeElement) ? document.activeElement.id : null;
    const name = h("input", { id: "template-name", value: draft.name, maxlength: "200", readonly: !admin,
                              oninput: (e) => { draft.name = e.target.value; } });
    const description = h("textarea", { id: "template-description", rows: 2, maxlength: "2000", readonly: !admin,
                                        oninput: (e) => { draft.description = e.target.value; } });
    description.value = draft.description;
    const published = current.status === "published";
    editor.replaceChildren(h("section", { class: "panel", "aria-labelledby": "template-heading" },
      h("div", { class: "flow-head" },
        h("h2", { id: "template-heading" }, current.name),
        h("span", { class: `status-badge tpl-${current.status}`, id: "template-state", dataset: { status: current.status } },
          `${published ? "Published" : "Draft"} · version ${current.version}`)),
      h("p", { class: "hint" }, `Created by ${current.created_by?.name ?? "someone"} · ${timeOf(current.created_at)}`),
      published && admin ? h("p", { class: "version-note" },
        `Saving a change makes this a draft of version ${current.version + 1}; workflows already started keep their copy. `,
        "Publish again to offer the new version.") : null,
      message, saved,
      h("label", {}, "Name", name),
      h("label", {}, "Description", description),
      h("h3", { class: "steps-title" }, `Steps (${draft.steps.length})`),
      h("ol", { class: "tsteps", id: "tsteps" }, draft.steps.map(stepEditor)),
      admin ? h("div", { class: "actions builder-actions" },
        h("button", { type: "button", id: "add-step", onclick: () => {
          const keys = new Set(draft.steps.map((s) => s.key));
          let n = draft.steps.length + 1;
          while (keys.has(`step_${n}`)) n += 1;
          const previous = draft.steps.at(-1);
          draft.steps.push({ key: `step_${n}`, title: `Step ${n}`, action: "checklist", role: "analyst",
                             required: true, after: previous ? [previous.key] : [], config: { items: [] } });
          renderEditor();
          document.getElementById(`tstep-${draft.steps.length - 1}-title`)?.select();
        } }, "+ Add step"),
        h("span", { class: "grow" }),
        h("button", { type: "button", id: "save-template", onclick: () => save() }, "Save draft"),
        h("button", { type: "button", class: "primary", id: "publish-template", onclick: () => save({ andPublish: true }) },
          published ? "Save and publish" : "Publish")) : null));
    if (focused) document.getElementById(focused)?.focus();
  }

  const create = admin ? h("form", { class: "new-template", id: "new-template", onsubmit: async (event) => {
    event.preventDefault();
    const form = new FormData(event.target);
    try {
      const made = await store.create(String(form.get("name")).trim(), "");
      event.target.reset();
      await loadList();
      onSelect(made.id);
    } catch (error) {
      say(`The template was not created: ${error.message}`);
      if (!current) renderEditor();
    }
  } },
    h("label", {}, "New template", h("input", { name: "name", required: true, maxlength: "200",
                                                id: "new-template-name", placeholder: "e.g. Initiation" })),
    h("button", { type: "submit", class: "primary small" }, "Create draft")) : null;

  root.replaceChildren(h("section", { class: "templates-page", "aria-labelledby": "templates-title" },
    h("div", { class: "page-head" },
      h("div", {}, h("h1", { id: "templates-title" }, "Workflow templates"),
        h("p", { class: "hint" }, "A template is the list of steps a workflow runs on an idea."))),
    h("div", { class: "templates-grid" },
      h("nav", { class: "panel template-nav", "aria-label": "Templates" }, create, list),
      editor)));
  renderEditor();
  loadList().catch((error) => say(error.message));
  if (templateId) {
    store.get(templateId).then((t) => { if (!stopped) take(t); }).catch((error) => {
      editor.replaceChildren(h("p", { class: "page-message" }, `This template cannot be shown: ${error.message}`));
    });
  }
  return () => { stopped = true; };
}
