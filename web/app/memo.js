// The memo's shape (docs/workbench.md): sections in a map keyed by a stable slug, and their
// order in a list. Keys, not array positions, address a section, so a section's pointer
// (`/sections/thesis/text`) never shifts when someone inserts another, and two people's edits
// to different sections never touch the same write unit.
//
//   {"order": ["thesis", "catalysts", "risks"],
//    "sections": {"thesis": {"title": "Thesis", "text": "..."}, ...}}

import { pointer } from "./json_patch.js";

export const STARTER_SECTIONS = [
  ["thesis", "Thesis"], ["catalysts", "Catalysts"], ["risks", "Risks"],
  ["valuation", "Valuation summary"],
];

export function starterMemo() {
  return {
    order: STARTER_SECTIONS.map(([key]) => key),
    sections: Object.fromEntries(STARTER_SECTIONS.map(([key, title]) => [key, { title, text: "" }])),
  };
}

export function sectionsOf(state) {
  const sections = state?.sections ?? {};
  const order = Array.isArray(state?.order) ? state.order : Object.keys(sections);
  return order.filter((key) => sections[key]).map((key) => ({ key, ...sections[key] }));
}

export const sectionPath = (key) => pointer("sections", key);
export const textPath = (key) => pointer("sections", key, "text");
export const titlePath = (key) => pointer("sections", key, "title");

// Ops that append a section with a key unused so far.
export function addSectionOps(state, title) {
  const base = title.toLowerCase().replace(/[^a-z0-9]+/g, "-").replace(/^-|-$/g, "") || "section";
  let key = base;
  for (let n = 2; state?.sections?.[key]; n++) key = `${base}-${n}`;
  const ops = [];
  if (!state.sections) ops.push({ op: "add", path: "/sections", value: {} });
  if (!Array.isArray(state.order)) ops.push({ op: "add", path: "/order", value: [] });
  ops.push({ op: "add", path: sectionPath(key), value: { title, text: "" } });
  ops.push({ op: "add", path: "/order/-", value: key });
  return { key, ops };
}
