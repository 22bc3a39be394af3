// The top bar: the product name, who is on each stage right now, the connection's state in
// words (Google Docs' quiet "saving / saved / offline"), and the signed-in user.

import { h } from "../dom.js";
import { STAGES } from "../stage_presence.js";
import { avatar } from "./people.js";

const CONNECTION = {
  connecting: ["Connecting…", "pending"],
  live: ["Live", "ok"],
  reconnecting: ["Reconnecting… your changes are kept", "pending"],
  offline: ["Offline: your changes are kept", "bad"],
  closed: ["Disconnected", "bad"],
};

// The main places; the current one is marked for screen readers and by its underline.
const PLACES = [["#/", "Ideas", /^(#\/?|#\/i\/.*|)$/], ["#/documents", "Documents", /^#\/(documents|d\/.*)$/],
                ["#/templates", "Templates", /^#\/templates/], ["#/dashboard", "Dashboard", /^#\/dashboard/]];

function places() {
  return h("nav", { class: "places", "aria-label": "Main" }, PLACES.map(([href, label, here]) =>
    h("a", { href, "aria-current": here.test(location.hash) ? "page" : null }, label)));
}

export function renderHeader(root, { session, wire, stages, bell, onSignOut }) {
  const stageBadges = STAGES.map(([kind, label]) => {
    const people = stages ? stages.people(kind) : [];
    const names = people.map((p) => p.name).join(", ");
    return h("li", { class: "stage", dataset: { kind } },
      h("span", { class: "stage-badge", role: "img",
                  "aria-label": `${label} stage: ${people.length ? names : "nobody"}`,
                  title: people.length ? `${label}: ${names}` : `${label}: nobody right now` },
        h("span", { class: "stage-name" }, label),
        h("span", { class: "stage-count" }, String(people.length))));
  });
  const [text, tone] = CONNECTION[wire?.status ?? "connecting"];
  root.replaceChildren(
    h("a", { class: "brand", href: "#/" }, h("span", { class: "brand-mark", "aria-hidden": "true" }, "◆"),
      "coedit"),
    session.user ? places() : null,
    session.signedIn || session.user
      ? h("nav", { class: "stages", "aria-label": "Who is on each stage" }, h("ul", {}, stageBadges))
      : h("span"),
    h("div", { class: "header-end" },
      wire ? h("span", { id: "connection", class: `connection ${tone}`, role: "status",
                          dataset: { status: wire.status } },
        h("span", { class: "dot", "aria-hidden": "true" }), text) : null,
      bell ?? null,
      session.user ? h("div", { class: "me", id: "who" },
        avatar(session.anonymous ? { id: "guest", name: "Guest" } : session.user, { you: true }),
        h("span", { class: "me-text" },
          h("strong", {}, session.anonymous ? "Guest" : session.user.name),
          h("small", {}, session.anonymous ? "read only"
            : `${session.user.roles.join(", ")} · ${session.user.tenant}`)),
        h("button", { class: "quiet", type: "button", onclick: onSignOut },
          session.anonymous ? "Sign in" : "Switch user")) : null));
}
