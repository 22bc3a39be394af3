// Workflow steps of the running (and paused) workflows by state: a tile per state with its
// count, and the steps that want someone (ready, in progress, blocked, failed) listed with
// their workflow, idea and who has them.

import { h } from "../dom.js";

const STATES = [
  ["pending", "Pending"], ["ready", "Ready"], ["in_progress", "In progress"], ["blocked", "Blocked"],
  ["failed", "Failed"], ["completed", "Completed"], ["skipped", "Skipped"],
];
const ATTENTION = ["blocked", "failed", "in_progress", "ready"];
const LISTED = 12;

export function stepBoard(directory) {
  const tiles = h("ul", { class: "state-tiles", id: "step-states" });
  const list = h("ul", { class: "step-list", id: "step-list" });
  const count = h("p", { class: "hint", id: "workflow-count" });
  const element = h("section", { class: "panel", id: "steps-panel", "aria-labelledby": "steps-title" },
    h("div", { class: "panel-head" }, h("h2", { id: "steps-title" }, "Workflow steps by state"), count),
    tiles, list);

  function update(steps, { instances, loaded }) {
    const byState = new Map(STATES.map(([state]) => [state, 0]));
    for (const { step } of steps) byState.set(step.state, (byState.get(step.state) ?? 0) + 1);
    tiles.replaceChildren(...[...byState].map(([state, n]) => h("li", {
      class: `state-tile state-${state}${n ? "" : " zero"}`, dataset: { state, count: String(n) } },
      h("span", { class: "state-count" }, String(n)),
      h("span", { class: "state-name" }, STATES.find(([s]) => s === state)?.[1] ?? state))));
    const wanting = steps.filter(({ step }) => ATTENTION.includes(step.state))
      .sort((a, b) => ATTENTION.indexOf(a.step.state) - ATTENTION.indexOf(b.step.state));
    list.replaceChildren(...(wanting.length ? wanting.slice(0, LISTED).map(({ step, instance }) =>
      h("li", { class: "step-item", dataset: { state: step.state, step: step.id } },
        h("span", { class: `step-state state-${step.state}` }, STATES.find(([s]) => s === step.state)?.[1] ?? step.state),
        h("div", { class: "step-text" },
          h("strong", {}, step.title),
          h("small", {}, `${instance.template.name} · ${directory.ideaTitle(instance.idea)}`)),
        h("span", { class: "step-who" }, step.assignee ? step.assignee.name ?? step.assignee.id
          : `any ${step.role}`)))
      : [h("li", { class: "empty" }, loaded ? "No step waits for anyone." : "Loading…")]));
    if (wanting.length > LISTED) list.append(h("li", { class: "hint" }, `and ${wanting.length - LISTED} more`));
    count.textContent = `${steps.length} steps in ${instances} running workflow${instances === 1 ? "" : "s"}`;
  }

  return { element, update };
}
