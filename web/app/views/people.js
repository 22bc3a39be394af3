// Avatars: a person's initials in their colour, their full name as the accessible name and
// tooltip. Colour is decoration; the name and the words beside it carry the meaning.

import { h, hueOf, initials } from "../dom.js";

export function avatar(user, { you = false, note = "" } = {}) {
  const label = `${user.name}${you ? " (you)" : ""}${note ? `, ${note}` : ""}`;
  return h("span", { class: "avatar", role: "img", "aria-label": label, title: label,
                     style: `--hue: ${hueOf(user.id)}` }, initials(user.name));
}

// The avatar stack of the people on a document, one avatar per person.
export function peopleHere(sync) {
  const people = new Map();
  for (const entry of sync.presence.values()) {
    const you = entry.session === sync.mySession;
    const known = people.get(entry.user.id);
    if (!known || you) {
      const status = entry.state?.status ?? "viewing";
      people.set(entry.user.id, { user: entry.user, you, status });
    }
  }
  const list = [...people.values()].sort((a, b) => Number(b.you) - Number(a.you));
  return h("div", { class: "people", role: "group",
                    "aria-label": `On this document: ${list.map((p) => p.user.name).join(", ")}` },
    h("span", { class: "people-label" }, `${list.length} here`),
    list.map((p) => h("span", { class: "person", dataset: { status: p.status } },
      avatar(p.user, { you: p.you, note: p.status }),
      h("span", { class: "person-name" }, p.you ? `${p.user.name} (you)` : p.user.name))));
}
