// Events per minute over the last hour, stacked by type: hand-written SVG (sixty bars of a
// few segments each need no chart library). The busiest types get their own colour and the
// rest are summed as "Other types". Everything the colours say is also in words: the legend
// names each type with its count (and is the keyboard's way to filter by a type), each bar
// has a tooltip with its breakdown, and "Show the numbers" opens the same data as a table.

import { h } from "../dom.js";
import { typeColour, typeLabel } from "./event_labels.js";

const SVG = "http://www.w3.org/2000/svg";
const HEIGHT = 230;
const MARGIN = { top: 12, right: 12, bottom: 26, left: 40 };
const SHOWN_TYPES = 8;
const OTHER = { type: "", label: "Other types", colour: "#c3cad6" };
const CLOCK = new Intl.DateTimeFormat(undefined, { hour: "2-digit", minute: "2-digit" });

function svg(tag, attributes = {}, ...children) {
  const element = document.createElementNS(SVG, tag);
  for (const [name, value] of Object.entries(attributes)) element.setAttribute(name, String(value));
  element.append(...children);
  return element;
}

// The y axis: a round step (1, 2, 2.5 or 5 times a power of ten) giving about four steps,
// and the first multiple of it at or above the busiest minute.
function scale(max) {
  if (max <= 4) return { top: 4, step: 1 };
  const rough = max / 4;
  const power = 10 ** Math.floor(Math.log10(rough));
  const step = [1, 2, 2.5, 5, 10].map((m) => m * power).find((s) => s >= rough);
  return { top: Math.ceil(max / step) * step, step };
}

const plural = (n, word) => `${n.toLocaleString()} ${word}${n === 1 ? "" : "s"}`;

export function eventChart({ onPickType }) {
  const total = h("p", { class: "chart-total", id: "chart-total" });
  const plot = h("div", { class: "chart-plot" });
  const legend = h("ul", { class: "chart-legend", id: "chart-legend", "aria-label": "Event types: pick one to filter" });
  const table = h("table", { class: "chart-table", id: "chart-table" });
  const element = h("section", { class: "panel chart-panel", id: "event-chart", "aria-labelledby": "chart-title" },
    h("div", { class: "panel-head" },
      h("div", {},
        h("h2", { id: "chart-title" }, "Events per minute"),
        h("p", { class: "hint" }, "Last 60 minutes, by type · the newest minute is still filling")),
      total),
    plot, legend,
    h("details", { class: "chart-numbers" }, h("summary", {}, "Show the numbers"), table));
  let last = null;
  let width = 0;

  // The plot's width comes from the observer, not from reading the layout at every update
  // (which would force the browser to lay out the whole page while events pour in).
  new ResizeObserver(([entry]) => {
    const now = Math.round(entry.contentRect.width);
    if (Math.abs(now - width) <= 4) return;
    width = now;
    if (last) update(...last);
  }).observe(plot);

  function update(data, filters) {
    last = [data, filters];
    width ||= 900;
    const shown = data.types.slice(0, SHOWN_TYPES).map((t) => ({ ...t, label: typeLabel(t.type),
                                                                 colour: typeColour(t.type) }));
    const rest = data.types.slice(SHOWN_TYPES);
    if (rest.length) {
      const counts = new Array(data.minutes).fill(0);
      for (const t of rest) t.counts.forEach((c, i) => { counts[i] += c; });
      shown.push({ ...OTHER, counts, total: rest.reduce((a, t) => a + t.total, 0) });
    }
    const sum = data.perMinute.reduce((a, b) => a + b, 0);
    total.replaceChildren(h("strong", {}, sum.toLocaleString()), ` event${sum === 1 ? "" : "s"}`);
    total.dataset.total = String(sum);
    drawPlot(data, shown, sum);
    drawLegend(data, filters);
    drawTable(data);
  }

  function drawPlot(data, shown, sum) {
    const innerW = width - MARGIN.left - MARGIN.right;
    const innerH = HEIGHT - MARGIN.top - MARGIN.bottom;
    const peak = Math.max(0, ...data.perMinute);
    const { top, step } = scale(peak);
    const y = (v) => MARGIN.top + innerH - (v / top) * innerH;
    const slot = innerW / data.minutes;
    const barW = Math.max(2, slot * 0.72);
    const busiest = data.perMinute.indexOf(peak);
    const busiestAt = CLOCK.format(new Date(data.start + busiest * 60_000));
    const summary = sum === 0 ? "No events in the last 60 minutes match the filters."
      : `${plural(sum, "event")} in the last 60 minutes; busiest minute ${busiestAt} with ` +
        `${plural(peak, "event")}. Most frequent: ${shown.slice(0, 3).map((t) =>
          `${t.label} ${t.total}`).join(", ")}.`;

    const grid = Array.from({ length: Math.round(top / step) + 1 }, (_, i) => {
      const value = step * i;
      return svg("g", { class: "tick" },
        svg("line", { x1: MARGIN.left, x2: width - MARGIN.right, y1: y(value), y2: y(value) }),
        svg("text", { x: MARGIN.left - 8, y: y(value) + 4, "text-anchor": "end" }, value.toLocaleString()));
    });
    const labels = [];
    for (let i = 0; i < data.minutes; i += 10) {
      labels.push(svg("text", { x: MARGIN.left + slot * i + slot / 2, y: HEIGHT - 8, "text-anchor": "middle" },
        CLOCK.format(new Date(data.start + i * 60_000))));
    }
    labels.push(svg("text", { x: MARGIN.left + slot * (data.minutes - 0.5), y: HEIGHT - 8,
                              "text-anchor": "middle", class: "now" }, "now"));
    const bars = [];
    for (let i = 0; i < data.minutes; i += 1) {
      if (!data.perMinute[i]) continue;
      const x = MARGIN.left + slot * i + (slot - barW) / 2;
      let base = 0;
      const parts = [];
      const words = [];
      for (const t of shown) {
        const count = t.counts[i];
        if (!count) continue;
        parts.push(svg("rect", { x, width: barW, y: y(base + count), height: Math.max(1, y(base) - y(base + count)),
                                 fill: t.colour }));
        words.push(`${t.label} ${count}`);
        base += count;
      }
      const when = CLOCK.format(new Date(data.start + i * 60_000));
      bars.push(svg("g", { class: "bar", "data-minute": i },
        svg("title", {}, `${when}: ${plural(data.perMinute[i], "event")} (${words.join(", ")})`), ...parts));
    }
    const chart = svg("svg", { width, height: HEIGHT, viewBox: `0 0 ${width} ${HEIGHT}`, role: "img",
                               "aria-label": summary, class: "chart-svg" },
      svg("g", { class: "grid" }, ...grid), svg("g", { class: "bars" }, ...bars),
      svg("g", { class: "axis" }, ...labels));
    const empty = sum === 0 ? h("p", { class: "chart-empty" }, "No events in this window match the filters yet.") : null;
    plot.replaceChildren(chart, ...(empty ? [empty] : []));
  }

  function drawLegend(data, filters) {
    const picked = filters.type;
    legend.replaceChildren(...data.types.map((t) => {
      const pressed = picked === t.type;
      return h("li", {},
        h("button", { type: "button", class: "legend-item", "aria-pressed": String(pressed),
                      dataset: { type: t.type, count: String(t.total) },
                      title: pressed ? "Show every type again" : `Show only ${typeLabel(t.type)}`,
                      onclick: () => onPickType(pressed ? "" : t.type) },
          h("span", { class: "swatch", style: `background: ${typeColour(t.type)}`, "aria-hidden": "true" }),
          h("span", { class: "legend-label" }, typeLabel(t.type)),
          h("span", { class: "legend-count" }, t.total.toLocaleString())));
    }));
  }

  function drawTable(data) {
    const last = (counts, n) => counts.slice(-n).reduce((a, b) => a + b, 0);
    table.replaceChildren(
      h("caption", { class: "visually-hidden" }, "Events by type in the last 60, 15 and 5 minutes"),
      h("thead", {}, h("tr", {}, ["Type", "Last 60 min", "Last 15 min", "Last 5 min"].map((t, i) =>
        h("th", { scope: "col", class: i ? "num" : "" }, t)))),
      h("tbody", {}, data.types.map((t) => h("tr", { dataset: { type: t.type } },
        h("th", { scope: "row" }, typeLabel(t.type), " ", h("code", {}, t.type)),
        h("td", { class: "num" }, String(t.total)),
        h("td", { class: "num" }, String(last(t.counts, 15))),
        h("td", { class: "num" }, String(last(t.counts, 5)))))));
  }

  return { element, update };
}
