// Comment threads anchored at one place of a document (a memo section's JSON pointer): a
// toggle for the section's head that counts them, and the threads themselves, shown under the
// section's text. Everyone but a viewer starts threads and replies; authors edit their own
// comments; the thread's author, reviewers and admins resolve and reopen. What is being typed
// (a reply, an edit, a new thread) survives the re-render that a comment arriving live causes.

import { h, icon, timeOf } from "../dom.js";
import { avatar } from "./people.js";

const MAX_BODY = 10000;

export function commentAbilities(session) {
  const user = session.signedIn ? session.user : null;
  const roles = user?.roles ?? [];
  return {
    user,
    comment: roles.some((r) => r !== "viewer"),
    resolveAny: roles.includes("reviewer") || roles.includes("admin"),
  };
}

export function sectionComments(trail, session, { path, label, onError }) {
  const may = commentAbilities(session);
  const drafts = new Map();  // textarea id -> text being written
  const editing = new Set(); // ids of comments being edited
  const replying = new Set(); // ids of threads with an open reply field
  let expanded = false;

  const badge = h("span", { class: "comment-count" });
  const openTag = h("span", { class: "open-tag" });
  const toggle = h("button", { type: "button", class: "small comment-toggle", "aria-expanded": "false",
                               dataset: { path } }, icon("comment"), h("span", {}, "Comments"), badge, openTag);
  const body = h("div", { class: "comments", hidden: true, dataset: { path } });

  const act = async (promise, what) => {
    try {
      await promise;
      return true;
    } catch (error) {
      onError(`${what}: ${error.code === "forbidden" ? "your role does not allow this" : error.message}`);
      return false;
    }
  };

  function field(id, labelText, placeholder) {
    const area = h("textarea", { id, rows: 2, maxlength: String(MAX_BODY), placeholder,
                                 "aria-label": labelText });
    area.value = drafts.get(id) ?? "";
    area.addEventListener("input", () => drafts.set(id, area.value));
    return area;
  }

  function submitter(id, send) {
    return async (event) => {
      event.preventDefault();
      const text = (drafts.get(id) ?? "").trim();
      if (!text) {
        onError("A comment needs some words.");
        return;
      }
      if (await send(text)) {
        drafts.delete(id);
        render();
      }
    };
  }

  function commentView(comment, thread) {
    const mine = may.user && comment.author.id === may.user.id;
    const editId = `edit-${comment.id}`;
    const who = comment.author.name ?? comment.author.id;
    const content = editing.has(comment.id)
      ? h("form", { class: "comment-form", onsubmit: submitter(editId, async (text) => {
        const ok = await act(trail.editComment(comment.id, text), "Your edit was not saved");
        if (ok) editing.delete(comment.id);
        return ok;
      }) },
        field(editId, `Edit your comment in ${label()}`),
        h("div", { class: "actions" },
          h("button", { type: "submit", class: "primary small" }, "Save"),
          h("button", { type: "button", class: "small", onclick: () => {
            editing.delete(comment.id);
            drafts.delete(editId);
            render();
          } }, "Cancel")))
      : h("p", { class: "comment-body" }, comment.body);
    return h("li", { class: "comment", dataset: { id: comment.id } },
      h("div", { class: "comment-head" },
        avatar({ id: comment.author.id, name: who }),
        h("strong", {}, who),
        h("time", { datetime: comment.created_at }, timeOf(comment.created_at)),
        comment.edited_at ? h("span", { class: "edited" }, "(edited)") : null,
        mine && !editing.has(comment.id) && !thread.resolved
          ? h("button", { type: "button", class: "quiet small", "aria-label": `Edit your comment: ${comment.body.slice(0, 40)}`,
            onclick: () => {
              editing.add(comment.id);
              drafts.set(editId, comment.body);
              render();
              document.getElementById(editId)?.focus();
            } }, "Edit") : null),
      content);
  }

  function threadView(thread) {
    const replyId = `reply-${thread.id}`;
    const starter = thread.first.author;
    const mayResolve = may.resolveAny || (may.user && starter.id === may.user.id);
    const topic = thread.first.body.slice(0, 40);
    const controls = [];
    if (may.comment && !thread.resolved && !replying.has(thread.id)) {
      controls.push(h("button", { type: "button", class: "small", "aria-label": `Reply to: ${topic}`, onclick: () => {
        replying.add(thread.id);
        render();
        document.getElementById(replyId)?.focus();
      } }, "Reply"));
    }
    if (mayResolve) {
      controls.push(h("button", { type: "button", class: thread.resolved ? "small" : "small resolve",
        "aria-label": `${thread.resolved ? "Reopen" : "Resolve"} thread: ${topic}`,
        onclick: () => act(trail.setResolved(thread.id, !thread.resolved),
                           thread.resolved ? "The thread was not reopened" : "The thread was not resolved") },
      thread.resolved ? "Reopen" : h("span", {}, icon("check"), " Resolve")));
    }
    const resolvedBy = thread.first.resolved_by;
    return h("li", { class: `thread ${thread.resolved ? "resolved" : "open"}`,
                     dataset: { thread: thread.id, resolved: String(thread.resolved) },
                     "aria-label": `Thread by ${starter.name ?? starter.id}, ${thread.resolved ? "resolved" : "open"}` },
      thread.resolved ? h("p", { class: "thread-state" }, icon("check"),
        `Resolved${resolvedBy ? ` by ${resolvedBy.name ?? resolvedBy.id}` : ""}`) : null,
      h("ol", { class: "thread-comments" }, thread.comments.map((c) => commentView(c, thread))),
      replying.has(thread.id) && !thread.resolved
        ? h("form", { class: "comment-form reply-form", onsubmit: submitter(replyId, async (text) => {
          const ok = await act(trail.addComment(text, { parent: thread.id }), "Your reply was not sent");
          if (ok) replying.delete(thread.id);
          return ok;
        }) },
          field(replyId, `Reply to: ${topic}`, "Write a reply"),
          h("div", { class: "actions" },
            h("button", { type: "submit", class: "primary small" }, "Send reply"),
            h("button", { type: "button", class: "small", onclick: () => { replying.delete(thread.id); render(); } },
              "Cancel")))
        : null,
      controls.length ? h("div", { class: "actions thread-actions" }, controls) : null);
  }

  function render() {
    const threads = trail.threadsAt(path);
    const comments = threads.reduce((n, t) => n + t.comments.length, 0);
    const open = threads.filter((t) => !t.resolved).length;
    badge.textContent = String(comments);
    badge.hidden = comments === 0;
    openTag.textContent = open ? `${open} open` : "";
    openTag.hidden = open === 0;
    toggle.classList.toggle("has-open", open > 0);
    toggle.dataset.open = String(open);
    toggle.dataset.count = String(comments);
    toggle.setAttribute("aria-label", `Comments on ${label()}: ${comments} comment${comments === 1 ? "" : "s"}, ` +
                                      `${open} open thread${open === 1 ? "" : "s"}`);
    if (!expanded) return;
    const focused = body.contains(document.activeElement) ? document.activeElement : null;
    const [focusId, start, end] = focused ? [focused.id, focused.selectionStart, focused.selectionEnd] : [];
    const newId = `new-comment-${path}`;
    body.replaceChildren(
      h("h3", { class: "visually-hidden" }, `Comments on ${label()}`),
      threads.length ? h("ul", { class: "threads" }, threads.map(threadView))
        : h("p", { class: "hint" }, "No comments on this section yet."),
      may.comment ? h("form", { class: "comment-form new-thread", onsubmit: submitter(newId, (text) =>
        act(trail.addComment(text, { path }), "Your comment was not posted")) },
        field(newId, `New comment on ${label()}`, "Comment on this section"),
        h("div", { class: "actions" }, h("button", { type: "submit", class: "small primary" }, "Comment")))
        : null);
    if (focusId) {
      const again = document.getElementById(focusId);
      again?.focus();
      if (again && start !== undefined && again.setSelectionRange) again.setSelectionRange(start, end);
    }
  }

  toggle.addEventListener("click", () => {
    expanded = !expanded;
    toggle.setAttribute("aria-expanded", String(expanded));
    body.hidden = !expanded;
    render();
  });
  const stop = trail.on("change", ({ comment }) => {
    if (!comment || comment.path === path) render();
  });
  render();
  return { head: toggle, body, destroy: stop, refresh: render };
}
