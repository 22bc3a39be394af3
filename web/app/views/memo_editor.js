// A memo edited like a document: each section a title and a body of prose. Every input event
// becomes one `splice` (web/splice.js splicesFromEdit) handed to the document's sync; what
// others type arrives through the sync and is written into the textarea with the caret kept
// where it was (shifted by what was inserted or removed before it). Rows are keyed by section
// and re-rendered only when their section object changed, so 200 sections stay quick.

import { h, hueOf } from "../dom.js";
import { sectionsOf, sectionPath, textPath, titlePath, addSectionOps } from "../memo.js";
import { splicesFromEdit, toCodePointIndex, toUtf16Index } from "../../splice.js";
import { lockControl } from "./lock_control.js";

const codeLength = (text) => Array.from(text).length;

// Where a caret at code point `at` goes when `before` becomes `after`.
function carryCaret(before, after, at) {
  const change = splicesFromEdit(before, after);
  if (!change) return at;
  if (at < change.at) return at;
  if (at >= change.at + change.remove) return at + codeLength(change.insert) - change.remove;
  return change.at + codeLength(change.insert);
}

export function memoEditor(sync, session, { onError, sectionExtras }) {
  const rows = new Map();
  const list = h("div", { class: "sections" });
  const mayEdit = session.mayEdit();

  const blurLater = () => setTimeout(() => {
    if (!list.contains(document.activeElement)) sync.setFocus(null);
  }, 0);

  function makeRow(key) {
    const row = { key, section: null, shown: "", shownTitle: "", titleBase: null };
    row.text = h("textarea", { class: "section-text", id: `text-${key}`, rows: 3,
                               spellcheck: true, dataset: { path: textPath(key) } });
    row.title = h("input", { class: "section-title", id: `title-${key}`, maxlength: "200",
                             dataset: { path: titlePath(key) } });
    row.meta = h("div", { class: "section-meta" });
    // What other views hang on a section (its comment threads): a control for the head and a
    // body under the text, both kept for the row's life.
    row.extra = sectionExtras?.(sectionPath(key), () => row.section?.title ?? key) ?? null;
    row.element = h("section", { class: "section", dataset: { key },
                                 "aria-labelledby": `title-${key}` },
      h("div", { class: "section-head" }, row.title, row.meta, row.extra?.head), row.text,
      row.extra?.body);
    let composing = false;
    row.text.addEventListener("compositionstart", () => { composing = true; });
    row.text.addEventListener("compositionend", () => { composing = false; textEdited(row); });
    row.text.addEventListener("input", () => { if (!composing) textEdited(row); });
    row.text.addEventListener("focus", () => sync.setFocus(sectionPath(key)));
    row.title.addEventListener("focus", () => {
      row.titleBase = row.shownTitle;
      sync.setFocus(sectionPath(key));
    });
    row.text.addEventListener("blur", blurLater);
    row.title.addEventListener("blur", blurLater);
    row.title.addEventListener("change", () => titleEdited(row));
    row.title.addEventListener("keydown", (e) => { if (e.key === "Enter") row.title.blur(); });
    return row;
  }

  function textEdited(row) {
    const change = splicesFromEdit(row.shown, row.text.value);
    if (!change) return;
    const before = row.shown;
    row.shown = row.text.value;
    if (!sync.edit([{ op: "splice", path: textPath(row.key), ...change }])) {
      row.text.value = row.shown = before;
      onError("That section changed under you; your text is kept in the conflict panel.");
    }
  }

  function titleEdited(row) {
    const value = row.title.value;
    const now = row.section?.title;
    if (row.titleBase !== null && now !== row.titleBase && now !== value) {
      // Someone renamed the section while this user was typing a new name: a conflict.
      sync.conflictLocal(titlePath(row.key), value);
    } else if (value !== now) {
      sync.edit([{ op: "replace", path: titlePath(row.key), value }]);
    }
    row.titleBase = value;
  }

  function updateRow(row, section) {
    const { key } = row;
    if (row.section !== section) {
      row.section = section;
      if (section.text !== row.shown) {
        if (document.activeElement === row.text) {
          const value = row.text.value;
          const [start, end] = [toCodePointIndex(value, row.text.selectionStart),
                                toCodePointIndex(value, row.text.selectionEnd)];
          row.text.value = section.text;
          row.text.setSelectionRange(toUtf16Index(section.text, carryCaret(value, section.text, start)),
                                     toUtf16Index(section.text, carryCaret(value, section.text, end)));
        } else {
          row.text.value = section.text;
        }
        row.shown = section.text;
      }
      const editingTitle = document.activeElement === row.title && row.title.value !== row.shownTitle;
      const renamed = section.title !== row.shownTitle;
      if (renamed && !editingTitle) row.title.value = section.title;
      row.shownTitle = section.title;
      if (renamed) row.extra?.refresh();
      row.text.setAttribute("aria-label", `${section.title}: text`);
      row.title.setAttribute("aria-label", `Title of section ${section.title}`);
    }
    // Locks and focus marks change rarely; rebuild them only when what they show changed.
    const lock = sync.lockOn(sectionPath(key));
    const others = sync.focusedBy(sectionPath(key));
    const names = [...new Set(others.map((e) => e.user.name))];
    const shown = [lock?.path, lock?.holder.session, sync.mySession, names.join(","),
                   sync.wire.live, section.title].join("|");
    if (shown === row.metaShown) return;
    row.metaShown = shown;
    const lockedByOther = Boolean(lock) && lock.holder.session !== sync.mySession;
    const readOnly = !mayEdit || lockedByOther;
    row.text.readOnly = readOnly;
    row.title.readOnly = readOnly;
    row.element.classList.toggle("locked", lockedByOther);
    row.element.classList.toggle("focused-by-other", others.length > 0);
    if (others.length) row.element.style.setProperty("--hue", hueOf(others[0].user.id));
    row.meta.replaceChildren(
      names.length ? h("span", { class: "focus-mark", role: "status" },
        h("span", { "aria-hidden": "true" }, "✎ "),
        `${names.join(", ")} ${names.length > 1 ? "are" : "is"} here`) : "",
      lockControl(sync, session, sectionPath(key), `section ${section.title}`, onError));
  }

  function render() {
    if (!sync.local) return;
    const sections = sectionsOf(sync.local);
    const seen = new Set();
    let previous = null;
    for (const section of sections) {
      seen.add(section.key);
      let row = rows.get(section.key);
      if (!row) {
        row = makeRow(section.key);
        rows.set(section.key, row);
      }
      updateRow(row, sync.local.sections[section.key]);
      const place = previous ? previous.nextSibling : list.firstChild;
      if (place !== row.element) list.insertBefore(row.element, place);
      previous = row.element;
    }
    for (const [key, row] of rows) {
      if (!seen.has(key)) {
        row.extra?.destroy();
        row.element.remove();
        rows.delete(key);
      }
    }
  }

  const addForm = mayEdit ? h("form", { class: "add-section", onsubmit: (event) => {
    event.preventDefault();
    const input = event.target.elements.title;
    const { key, ops } = addSectionOps(sync.local, input.value.trim());
    if (sync.edit(ops)) {
      input.value = "";
      rows.get(key)?.text.focus();
    }
  } },
    h("label", { class: "grow" }, h("span", { class: "visually-hidden" }, "New section title"),
      h("input", { name: "title", required: true, maxlength: "200", placeholder: "New section title" })),
    h("button", { type: "submit" }, "Add section")) : null;

  const element = h("div", { class: "memo" }, list, addForm);
  const stop = sync.on("change", render);
  render();
  return {
    element,
    destroy: () => {
      stop();
      for (const row of rows.values()) row.extra?.destroy();
    },
    describe: (path) => {
      const match = /^\/sections\/([^/]+)(?:\/(title|text))?$/.exec(path);
      const section = match && sync.local?.sections?.[match[1].replaceAll("~1", "/").replaceAll("~0", "~")];
      const name = section?.title ?? match?.[1] ?? path;
      return { label: match?.[2] === "title" ? `the title of ${name}` : match?.[2] === "text" ? `the text of ${name}` : name,
               format: (v) => (v === undefined ? "(removed)" : String(v)), multiline: true };
    },
  };
}
