// The documents' shape, shared by the driver's scenarios.

// Every benchmark document lives in one collection.
export const COLLECTION = 'docs';

// A json0 object replace of one top-level field. The new value (oi) comes before the old
// one (od): the key order survives every JSON round trip to the subscribers, so a frame's
// first t=<ns> is the new value's. The old value is left out when the field is new.
export function replace(doc, field, value) {
  const component = { p: [field], oi: value };
  if (doc.data && Object.hasOwn(doc.data, field)) component.od = doc.data[field];
  return [component];
}

// Bytes of the {"a":"op",...} frame a subscriber receives for one replace, values aside
// (six-digit version and sequence numbers assumed).
export function opFrameOverhead(docId, src, field) {
  return JSON.stringify({
    a: 'op', c: COLLECTION, d: docId, v: 123456, src, seq: 123456,
    op: [{ p: [field], oi: '', od: '' }],
  }).length;
}
