// Text that merges, on the browser's side (docs/protocol.md, "Text that merges: `splice`").
//
// A client that types while deltas arrive must carry its unacknowledged splices past the
// server's, and the server's past its own, with exactly the rules the server uses when it
// rebases a stale patch; otherwise the two texts drift apart and never meet again. This is a
// line-for-line port of persistence/splices.py (`_carry`, `transform`), and the shared vectors
// in tests/vectors/splice.json, run here by tests/test_splice_js.py, keep it in step.
//
// A splice is a plain object {at, remove, insert}. Positions count Unicode code points, as the
// server's Python strings do, whereas a JS string and a textarea's selection count UTF-16
// units (an emoji is two); the conversions below are the one place that difference is bridged.

const codePoints = (text) => Array.from(text);
const length = (text) => codePoints(text).length;

// `a` rewritten to apply after `b` (both made on the same text). `aFirst` breaks the tie of two
// inserts at one position: a's text goes before b's. Two pieces come back when b inserted inside
// the range a removes (a's author never saw that text, so it is kept), listed right to left so
// that each position still holds when it is applied.
function carry(a, b, aFirst) {
  const bEnd = b.at + b.remove;
  const grown = length(b.insert);
  const point = (x) => // an insertion point, carried past b
    x < b.at || (x === b.at && aFirst) ? x : Math.max(b.at, x - b.remove) + grown;

  const aEnd = a.at + a.remove;
  // What a removes and b left in place: a left part before b's range, a right part after.
  const [leftFrom, leftTo] = [a.at, Math.min(aEnd, b.at)];
  const rightFrom = Math.max(a.at, bEnd) - b.remove + grown;
  const rightTo = aEnd - b.remove + grown;
  const at = point(a.at);
  const pieces = [];
  let insertPlaced = false;
  if (rightTo > rightFrom) {
    const merge = at === rightFrom && leftTo <= leftFrom;
    pieces.push({ at: rightFrom, remove: rightTo - rightFrom, insert: merge ? a.insert : "" });
    insertPlaced = merge;
  }
  if (leftTo > leftFrom) {
    const merge = at === leftFrom;
    pieces.push({ at: leftFrom, remove: leftTo - leftFrom, insert: merge ? a.insert : "" });
    insertPlaced = insertPlaced || merge;
  }
  if (!insertPlaced && (a.insert || pieces.length === 0)) {
    pieces.push({ at, remove: 0, insert: a.insert });
  }
  return pieces.sort((x, y) => y.at - x.at); // stable, like Python's sorted(reverse=True)
}

// Carry two sequences made on the same text past each other: returns [ours as it applies after
// theirs, theirs as it applies after ours]. `theirs` committed first, so its inserts win ties.
// Applying either sequence and then the other's carried form gives the same text.
export function transform(ours, theirs) {
  if (ours.length === 0 || theirs.length === 0) return [[...ours], [...theirs]];
  if (ours.length === 1 && theirs.length === 1) {
    return [carry(ours[0], theirs[0], false), carry(theirs[0], ours[0], true)];
  }
  if (ours.length > 1) {
    const [head, theirsAfterHead] = transform(ours.slice(0, 1), theirs);
    const [rest, theirsAfterAll] = transform(ours.slice(1), theirsAfterHead);
    return [[...head, ...rest], theirsAfterAll];
  }
  const [oursAfterFirst, first] = transform(ours, theirs.slice(0, 1));
  const [oursAfterAll, rest] = transform(oursAfterFirst, theirs.slice(1));
  return [oursAfterAll, [...first, ...rest]];
}

// A client's own unacknowledged splices (`pending`, already applied to its text) meet a delta's
// splices (`incoming`). The server committed `incoming` first, so it plays `theirs` and wins ties,
// exactly as when the server carries the client's patch past that version. Returns
// [pendingAfter: pending as it applies to the server's new text,
//  incomingAfter: what the client applies to the text it holds].
export function rebasePending(pending, incoming) {
  return transform(pending, incoming);
}

// Splices applied in order; a splice that does not fit is an error, as it is on the server,
// because it means this text and the splices were made on different versions.
export function applySplices(text, splices) {
  let chars = codePoints(text);
  for (const { at, remove, insert } of splices) {
    if (at < 0 || remove < 0 || at + remove > chars.length) {
      throw new RangeError(`splice at ${at} remove ${remove} does not fit a text of ` +
                           `${chars.length} characters`);
    }
    chars = [...chars.slice(0, at), ...codePoints(insert), ...chars.slice(at + remove)];
  }
  return chars.join("");
}

// An index inside a surrogate pair counts the whole character.
export function toCodePointIndex(text, utf16Index) {
  return length(text.slice(0, utf16Index));
}

export function toUtf16Index(text, codePointIndex) {
  return codePoints(text).slice(0, codePointIndex).join("").length;
}

// The one splice that turns `before` into `after` (null when they are equal). A textarea only
// says that its value changed, so the edit is what lies between the common prefix and suffix;
// comparing code points, not UTF-16 units, keeps an emoji replaced by another emoji whole.
export function splicesFromEdit(before, after) {
  if (before === after) return null;
  const [old, now] = [codePoints(before), codePoints(after)];
  let prefix = 0;
  while (prefix < old.length && prefix < now.length && old[prefix] === now[prefix]) prefix++;
  let suffix = 0;
  while (suffix < old.length - prefix && suffix < now.length - prefix &&
         old[old.length - 1 - suffix] === now[now.length - 1 - suffix]) suffix++;
  return {
    at: prefix,
    remove: old.length - prefix - suffix,
    insert: now.slice(prefix, now.length - suffix).join(""),
  };
}
