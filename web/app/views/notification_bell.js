// The header's bell: how many notifications are unread (in words for screen readers, as a
// number on the bell for the eye), and a panel that lists them, marks them read and links to
// their document. The element is built once and kept across header redraws, so an open panel
// stays open while the connection state beside it changes.

import { h, icon, timeOf } from "../dom.js";

const LABELS = {
  "review.assigned": "Review requested",
  "review.decided": "Review decided",
  "comment.reply": "Reply",
  "step.ready": "Workflow step ready",
};

export function notificationBell(notifications) {
  const count = h("span", { class: "bell-count", "aria-hidden": "true" });
  const button = h("button", { type: "button", class: "bell quiet", id: "bell",
                               "aria-expanded": "false", "aria-controls": "bell-panel" },
                     icon("bell"), count);
  const list = h("ul", { class: "bell-list" });
  const problem = h("p", { class: "panel-message bell-error", role: "alert" });
  const readAll = h("button", { type: "button", class: "small", id: "bell-read-all" }, "Mark all read");
  const panel = h("section", { class: "bell-panel", id: "bell-panel", hidden: true,
                               "aria-labelledby": "bell-title" },
    h("div", { class: "bell-head" }, h("h2", { id: "bell-title" }, "Notifications"), readAll),
    problem, list);
  const element = h("div", { class: "bell-holder" }, button, panel);
  const live = h("span", { class: "visually-hidden", role: "status", id: "bell-live" });
  element.append(live);

  const act = (promise) => promise.then(() => { problem.textContent = ""; }, (error) => {
    problem.textContent = `Could not update notifications: ${error.message}`;
  });

  const setOpen = (open) => {
    panel.hidden = !open;
    button.setAttribute("aria-expanded", String(open));
    if (open) (list.querySelector("a, button") ?? readAll).focus();
  };

  function item(note) {
    const to = note.doc ? `#/d/${encodeURIComponent(note.doc)}` : note.idea ? `#/i/${encodeURIComponent(note.idea)}` : null;
    const link = to ? h("a", { class: "bell-link", href: to,
      onclick: () => { act(notifications.markRead(note.id)); setOpen(false); } }, note.title)
      : h("span", { class: "bell-link" }, note.title);
    return h("li", { class: `bell-item ${note.read ? "read" : "unread"}`, dataset: { id: note.id, type: note.type } },
      h("div", { class: "bell-item-head" },
        note.read ? null : h("span", { class: "new-tag" }, "New"),
        h("span", { class: "visually-hidden" }, LABELS[note.type] ?? note.type),
        h("time", { datetime: note.created_at }, timeOf(note.created_at))),
      link,
      note.body ? h("p", { class: "bell-body" }, note.body) : null,
      note.read ? null : h("button", { type: "button", class: "small quiet mark-read",
        "aria-label": `Mark read: ${note.title}`, onclick: () => act(notifications.markRead(note.id)) },
        "Mark read"));
  }

  function render() {
    const unread = notifications.unread;
    const shown = unread ? `${unread}${notifications.more ? "+" : ""}` : "";
    count.textContent = shown;
    count.hidden = !unread;
    button.classList.toggle("has-unread", unread > 0);
    button.dataset.unread = String(unread);
    button.setAttribute("aria-label", unread ? `Notifications: ${shown} unread` : "Notifications: none unread");
    button.title = button.getAttribute("aria-label");
    readAll.disabled = unread === 0;
    list.replaceChildren(...(notifications.items.length ? notifications.items.map(item)
      : [h("li", { class: "bell-empty" }, "Nothing yet. Review requests, decisions and replies show up here.")]));
  }

  button.addEventListener("click", () => setOpen(panel.hidden));
  readAll.addEventListener("click", () => act(notifications.markAllRead()));
  element.addEventListener("keydown", (event) => {
    if (event.key === "Escape" && !panel.hidden) {
      setOpen(false);
      button.focus();
    }
  });
  // A click anywhere else closes the panel, as a menu would.
  document.addEventListener("click", (event) => {
    if (element.isConnected && !panel.hidden && !element.contains(event.target)) setOpen(false);
  });
  notifications.on("change", ({ cause, notification }) => {
    render();
    if (cause === "arrived") live.textContent = `New notification: ${notification.title}`;
  });
  render();
  return element;
}
