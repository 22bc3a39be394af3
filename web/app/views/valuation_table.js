// A valuation: the assumptions as editable cells (each change one `replace` op) and the
// figures derived from them by the one shared model (dcf.js), recomputed on every change from
// anyone, so every viewer sees the same numbers at the same version.

import { h } from "../dom.js";
import { pointer } from "../json_patch.js";
import { ASSUMPTIONS, valuation } from "../dcf.js";
import { lockControl } from "./lock_control.js";

const cellPath = (key) => pointer("assumptions", key);
const number = (digits) => new Intl.NumberFormat("en-US", { minimumFractionDigits: digits,
                                                            maximumFractionDigits: digits });
const money = number(1);
const perShare = number(2);

const shownValue = (unit, value) =>
  typeof value !== "number" ? "" : unit === "percent" ? String(+(value * 100).toFixed(4)) : String(value);
const parsedValue = (unit, text) => {
  const value = Number(text.replace(/[, %]/g, ""));
  if (text.trim() === "" || !Number.isFinite(value)) return null;
  return unit === "percent" ? +(value / 100).toFixed(8) : value;
};
export const formatAssumption = (unit, value) =>
  typeof value !== "number" ? "(none)" : unit === "percent" ? `${+(value * 100).toFixed(4)} %`
    : money.format(value);

export function figuresTable(state) {
  const result = valuation(state?.assumptions);
  const currency = state?.currency ?? "";
  if (result.error) {
    return h("div", { class: "figures error", role: "status", id: "figures" },
      h("strong", {}, "Figures unavailable: "), result.error);
  }
  return h("div", { class: "figures", id: "figures" },
    h("dl", { class: "headline" },
      h("div", {}, h("dt", {}, "Enterprise value"),
        h("dd", { id: "enterprise-value" }, `${money.format(result.enterpriseValue)}`)),
      h("div", {}, h("dt", {}, "Equity value"),
        h("dd", { id: "equity-value" }, `${money.format(result.equityValue)}`)),
      h("div", { class: "primary-figure" }, h("dt", {}, `Value per share${currency ? ` (${currency})` : ""}`),
        h("dd", { id: "per-share" }, perShare.format(result.perShare)))),
    h("table", { class: "projection" },
      h("caption", {}, "Five-year projection"),
      h("thead", {}, h("tr", {}, h("th", { scope: "col" }, ""),
        result.years.map((y) => h("th", { scope: "col", class: "num" }, `Year ${y.year}`)))),
      h("tbody", {}, [["Revenue", "revenue"], ["EBIT", "ebit"], ["Free cash flow", "fcf"],
                      ["Present value", "pv"]].map(([label, key]) =>
        h("tr", {}, h("th", { scope: "row" }, label),
          result.years.map((y) => h("td", { class: "num" }, money.format(y[key]))))))),
    h("p", { class: "terminal" }, `Terminal value ${money.format(result.terminalValue)}, `,
      `worth ${money.format(result.pvTerminal)} today.`));
}

export function valuationTable(sync, session, { onError }) {
  const mayEdit = session.mayEdit();
  const cells = new Map();
  const body = h("tbody");
  for (const { key, label, unit } of ASSUMPTIONS) {
    const input = h("input", { id: `cell-${key}`, class: "cell", inputmode: "decimal",
                               "aria-label": `${label}${unit === "percent" ? " in percent" : ""}`,
                               dataset: { path: cellPath(key) }, autocomplete: "off" });
    const cell = { key, label, unit, input, base: null, shown: null,
                   lock: h("div", { class: "cell-lock" }) };
    input.addEventListener("focus", () => { cell.base = cell.shown; sync.setFocus(cellPath(key)); });
    input.addEventListener("blur", () => setTimeout(() => {
      if (!body.contains(document.activeElement)) sync.setFocus(null);
    }, 0));
    input.addEventListener("keydown", (e) => { if (e.key === "Enter") input.blur(); });
    input.addEventListener("change", () => {
      const value = parsedValue(unit, input.value);
      if (value === null) {
        onError(`${label} must be a number.`);
        input.value = shownValue(unit, cell.shown);
        return;
      }
      const now = sync.local?.assumptions?.[key];
      if (cell.base !== null && now !== cell.base && now !== value) {
        sync.conflictLocal(cellPath(key), value);
      } else if (value !== now) {
        sync.edit([{ op: typeof now === "number" ? "replace" : "add", path: cellPath(key), value }]);
      }
      cell.base = value;
    });
    cells.set(key, cell);
    body.append(h("tr", { dataset: { key } },
      h("th", { scope: "row" }, h("label", { for: `cell-${key}` }, label)),
      h("td", { class: "cell-input" }, input,
        h("span", { class: "unit", "aria-hidden": "true" }, unit === "percent" ? "%" : "")),
      h("td", {}, cell.lock)));
  }
  const figures = h("div", { class: "figures-holder" });

  function render() {
    if (!sync.local) return;
    const assumptions = sync.local.assumptions ?? {};
    for (const cell of cells.values()) {
      const value = assumptions[cell.key];
      const typing = document.activeElement === cell.input &&
        cell.input.value !== shownValue(cell.unit, cell.shown);
      if (value !== cell.shown && !typing) cell.input.value = shownValue(cell.unit, value);
      cell.shown = value;
      const lock = sync.lockedByOther(cellPath(cell.key));
      cell.input.readOnly = !mayEdit || Boolean(lock);
      const others = sync.focusedBy(cellPath(cell.key));
      cell.input.closest("tr").classList.toggle("focused-by-other", others.length > 0);
      cell.lock.replaceChildren(
        others.length ? h("span", { class: "focus-mark" }, h("span", { "aria-hidden": "true" }, "✎ "),
          `${[...new Set(others.map((e) => e.user.name))].join(", ")}`) : "",
        lockControl(sync, session, cellPath(cell.key), cell.label, onError));
    }
    figures.replaceChildren(figuresTable(sync.local));
  }

  const element = h("div", { class: "valuation" },
    h("table", { class: "assumptions" }, h("caption", {}, "Assumptions"),
      h("thead", {}, h("tr", {}, h("th", { scope: "col" }, "Assumption"),
        h("th", { scope: "col" }, "Value"), h("th", { scope: "col" }, "Who / lock"))),
      body),
    figures);
  const stop = sync.on("change", render);
  render();
  return {
    element,
    destroy: stop,
    describe: (path) => {
      const spec = ASSUMPTIONS.find((a) => cellPath(a.key) === path);
      return spec ? { label: spec.label, format: (v) => formatAssumption(spec.unit, v),
                      parse: (text) => parsedValue(spec.unit, text), edit: (v) => shownValue(spec.unit, v) }
        : { label: path, format: (v) => JSON.stringify(v) };
    },
  };
}
