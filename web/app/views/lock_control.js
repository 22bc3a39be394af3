// The lock of one place (a memo section or a valuation cell): a badge naming the holder, and
// the button the user may press: take it, release it, or (admins) take it over.

import { h, icon } from "../dom.js";

export function lockControl(sync, session, path, label, onError) {
  const lock = sync.lockOn(path);
  const mine = lock && lock.holder.session === sync.mySession;
  const act = (what) => async () => {
    try {
      await what();
    } catch (error) {
      onError(error.code === "locked" && error.reply?.lock
        ? `${label} is locked by ${error.reply.lock.holder.user.name}.`
        : `Could not change the lock on ${label}: ${error.message}`);
    }
  };
  const parts = [];
  if (lock) {
    parts.push(h("span", { class: `lock-badge ${mine ? "mine" : "theirs"}`, role: "status",
                            "aria-label": `${label} locked by ${mine ? "you" : lock.holder.user.name}` },
      icon("lock"),
      mine ? "Locked by you" : `Locked by ${lock.holder.user.name}`));
  }
  if (session.mayEdit() && sync.wire.live) {
    if (!lock) {
      parts.push(h("button", { type: "button", class: "small lock-button",
                               "aria-label": `Lock ${label}`, onclick: act(() => sync.lock(path)) },
        "Lock"));
    } else if (mine && lock.path === path) {
      parts.push(h("button", { type: "button", class: "small lock-button",
                               "aria-label": `Unlock ${label}`, onclick: act(() => sync.unlock(path)) },
        "Unlock"));
    } else if (!mine && session.isAdmin()) {
      parts.push(h("button", { type: "button", class: "small danger lock-button",
                               "aria-label": `Take over the lock on ${label}`,
                               onclick: act(() => sync.lock(lock.path, { force: true })) },
        "Take over"));
    }
  }
  return h("span", { class: "lock-control" }, parts);
}
