// What each event type is called on screen and the colour it has in the chart. Colours go
// by family (edits blue, locks amber, reviews green, comments violet, workflows teal,
// refusals red), so a glance at the chart says what kind of activity it is; the words in the
// legend, the feed and the chart's table say exactly which.

const TYPES = {
  "patch.applied": ["Edit", "#2f5bd3"],
  "document.created": ["Document created", "#7b9cf0"],
  "document.archived": ["Document archived", "#9aa6bd"],
  "document.reopened": ["Document reopened", "#b7c2d6"],
  "lock.acquired": ["Lock taken", "#d08a00"],
  "lock.released": ["Lock released", "#f2c063"],
  "lock.expired": ["Lock expired", "#9c6500"],
  "lock.stolen": ["Lock taken over", "#d9480f"],
  "idea.created": ["Idea created", "#0f766e"],
  "review.assigned": ["Review requested", "#1d7a46"],
  "review.transitioned": ["Review moved", "#5dbb84"],
  "comment.added": ["Comment", "#7c3aed"],
  "comment.edited": ["Comment edited", "#a98bf3"],
  "comment.resolved": ["Thread resolved", "#5b21b6"],
  "comment.reopened": ["Thread reopened", "#c9b8f7"],
  "workflow.template_created": ["Template created", "#3f7f8f"],
  "workflow.template_changed": ["Template changed", "#5f9aa8"],
  "workflow.template_published": ["Template published", "#155e75"],
  "workflow.instantiated": ["Workflow started", "#0891b2"],
  "workflow.step_transitioned": ["Workflow step moved", "#2bb3cf"],
  "workflow.status_changed": ["Workflow paused/resumed", "#7dd3e4"],
  "workflow.completed": ["Workflow completed", "#0e4d5c"],
  "bulk.completed": ["Bulk operation", "#64748b"],
  "access.denied": ["Access refused", "#b42318"],
};

const FAMILIES = {
  patch: "Edits", document: "Documents", lock: "Locks", idea: "Ideas", review: "Reviews",
  comment: "Comments", workflow: "Workflows", bulk: "Bulk operations", access: "Refusals",
};

const OTHER_COLOURS = ["#94a3b8", "#a3a3a3", "#8b95a7", "#b0a89a"];

export function typeLabel(type) {
  return TYPES[type]?.[0] ?? type;
}

export function familyLabel(family) {
  return FAMILIES[family] ?? family;
}

export function typeColour(type) {
  if (TYPES[type]) return TYPES[type][1];
  let hash = 0;
  for (const ch of type) hash = (hash * 31 + ch.codePointAt(0)) >>> 0;
  return OTHER_COLOURS[hash % OTHER_COLOURS.length];
}

// A JSON pointer in words where the shape is known: /sections/thesis/text -> "thesis".
export function placeOf(path) {
  if (path === undefined) return "";
  if (path === "") return "whole document";
  const parts = path.split("/").slice(1).map((p) => p.replaceAll("~1", "/").replaceAll("~0", "~"));
  if (parts[0] === "sections" && parts[1]) return `section ${parts[1]}`;
  if (parts[0] === "assumptions" && parts[1]) return `cell ${parts[1]}`;
  return path;
}

const words = (state) => (state ?? "?").replaceAll("_", " ");

// One line saying what happened, beyond its type.
export function describe(record) {
  const d = record.detail;
  switch (record.type) {
    case "patch.applied":
      return `v${record.version}${d.path !== undefined ? ` · ${placeOf(d.path)}` : ""}` +
        (d.ops > 1 ? ` · ${d.ops} ops` : "");
    case "lock.acquired": case "lock.released": case "lock.expired": case "lock.stolen":
      return placeOf(d.path);
    case "review.assigned":
      return d.reviewer ? `reviewer ${d.reviewer}` : "";
    case "review.transitioned":
      return d.from && d.to ? `${words(d.from)} → ${words(d.to)}` : "";
    case "workflow.step_transitioned":
      return `${d.key ?? "step"}: ${words(d.from)} → ${words(d.to)}`;
    case "comment.added": case "comment.edited":
      return d.path ? placeOf(d.path) : "";
    case "document.created": case "idea.created":
      return d.title ?? "";
    case "bulk.completed":
      return d.operation ?? "";
    default:
      return d.reason ?? "";
  }
}
