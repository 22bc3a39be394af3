// JSON Patch (RFC 6902) plus coedit's `splice`, applied without mutating: every container on
// an op's path is copied and the rest is shared. Views compare sections by identity to
// re-render only what changed, which keeps a 200-section memo cheap to update.

import { applySplices } from "../splice.js";

export class PatchError extends Error {}

export function parsePointer(pointer) {
  if (pointer === "") return [];
  if (!pointer.startsWith("/")) throw new PatchError(`not a JSON pointer: ${pointer}`);
  return pointer.slice(1).split("/").map((s) => s.replaceAll("~1", "/").replaceAll("~0", "~"));
}

export function pointer(...segments) {
  return segments.map((s) => "/" + String(s).replaceAll("~", "~0").replaceAll("/", "~1")).join("");
}

export function valueAt(state, path) {
  let node = state;
  for (const segment of parsePointer(path)) {
    if (node === null || typeof node !== "object" || !(segment in node)) return undefined;
    node = node[segment];
  }
  return node;
}

const copy = (node) => (Array.isArray(node) ? [...node] : { ...node });

function arrayIndex(array, segment, forInsert) {
  if (segment === "-" && forInsert) return array.length;
  const index = Number(segment);
  const limit = forInsert ? array.length : array.length - 1;
  if (!/^(0|[1-9][0-9]*)$/.test(segment) || index > limit) {
    throw new PatchError(`array index ${segment} out of range`);
  }
  return index;
}

// Copies the containers down to the parent of `path` and hands it to `change`.
function withParent(state, path, change) {
  const segments = parsePointer(path);
  if (segments.length === 0) return change(null, null);
  const root = copy(state);
  let node = root;
  for (const segment of segments.slice(0, -1)) {
    const child = Array.isArray(node) ? node[arrayIndex(node, segment, false)] : node[segment];
    if (child === null || typeof child !== "object") throw new PatchError(`no container at ${path}`);
    node[segment] = copy(child);
    node = node[segment];
  }
  change(node, segments.at(-1));
  return root;
}

function same(a, b) {
  return JSON.stringify(a) === JSON.stringify(b);
}

export function applyOp(state, op) {
  switch (op.op) {
    case "add":
      if (op.path === "") return op.value;
      return withParent(state, op.path, (parent, key) => {
        if (Array.isArray(parent)) parent.splice(arrayIndex(parent, key, true), 0, op.value);
        else parent[key] = op.value;
      });
    case "replace":
      if (op.path === "") return op.value;
      return withParent(state, op.path, (parent, key) => {
        if (Array.isArray(parent)) parent[arrayIndex(parent, key, false)] = op.value;
        else if (key in parent) parent[key] = op.value;
        else throw new PatchError(`nothing to replace at ${op.path}`);
      });
    case "remove":
      return withParent(state, op.path, (parent, key) => {
        if (Array.isArray(parent)) parent.splice(arrayIndex(parent, key, false), 1);
        else if (key in parent) delete parent[key];
        else throw new PatchError(`nothing to remove at ${op.path}`);
      });
    case "splice": {
      const text = valueAt(state, op.path);
      if (typeof text !== "string") throw new PatchError(`no text at ${op.path}`);
      try {
        return applyOp(state, { op: "replace", path: op.path,
                                value: applySplices(text, [op]) });
      } catch (error) {
        throw new PatchError(error.message);
      }
    }
    case "test":
      if (!same(valueAt(state, op.path), op.value)) throw new PatchError(`test failed at ${op.path}`);
      return state;
    case "move":
    case "copy": {
      const value = valueAt(state, op.from);
      if (value === undefined) throw new PatchError(`nothing at ${op.from}`);
      const removed = op.op === "move" ? applyOp(state, { op: "remove", path: op.from }) : state;
      return applyOp(removed, { op: "add", path: op.path, value: structuredClone(value) });
    }
    default:
      throw new PatchError(`unknown op ${op.op}`);
  }
}

export function applyOps(state, ops) {
  return ops.reduce(applyOp, state);
}

// Whether two JSON pointers touch the same region: one is a prefix of the other, by segment.
export function overlaps(a, b) {
  const [x, y] = [parsePointer(a), parsePointer(b)];
  const n = Math.min(x.length, y.length);
  for (let i = 0; i < n; i++) if (x[i] !== y[i]) return false;
  return true;
}
