// The valuation model: one function, run by every viewer on the same assumptions, so everyone
// sees the same figures. A plain five-year DCF: revenue grows at `growth`, free cash flow is
// EBIT after tax (reinvestment assumed to match depreciation), discounted at `wacc`, plus a
// Gordon-growth terminal value. Rates are fractions (0.08 = 8 %).

export const ASSUMPTIONS = [
  { key: "revenue", label: "Revenue (last year)", unit: "money" },
  { key: "growth", label: "Revenue growth", unit: "percent" },
  { key: "ebit_margin", label: "EBIT margin", unit: "percent" },
  { key: "tax_rate", label: "Tax rate", unit: "percent" },
  { key: "wacc", label: "Discount rate (WACC)", unit: "percent" },
  { key: "terminal_growth", label: "Terminal growth", unit: "percent" },
  { key: "net_debt", label: "Net debt", unit: "money" },
  { key: "shares", label: "Shares outstanding", unit: "count" },
];

export const YEARS = 5;

export function starterValuation() {
  return {
    currency: "USD",
    assumptions: {
      revenue: 1000, growth: 0.08, ebit_margin: 0.2, tax_rate: 0.25, wacc: 0.09,
      terminal_growth: 0.02, net_debt: 250, shares: 100,
    },
  };
}

// Figures from assumptions, or {error} naming the first assumption that makes them meaningless.
export function valuation(assumptions) {
  const a = assumptions ?? {};
  for (const { key, label } of ASSUMPTIONS) {
    if (typeof a[key] !== "number" || !Number.isFinite(a[key])) return { error: `${label} is not a number` };
  }
  if (a.shares <= 0) return { error: "Shares outstanding must be positive" };
  if (a.wacc <= a.terminal_growth) return { error: "WACC must exceed terminal growth" };
  const years = [];
  let revenue = a.revenue;
  let pvSum = 0;
  for (let year = 1; year <= YEARS; year++) {
    revenue *= 1 + a.growth;
    const ebit = revenue * a.ebit_margin;
    const fcf = ebit * (1 - a.tax_rate);
    const discount = (1 + a.wacc) ** year;
    const pv = fcf / discount;
    pvSum += pv;
    years.push({ year, revenue, ebit, fcf, pv });
  }
  const terminalValue = (years.at(-1).fcf * (1 + a.terminal_growth)) / (a.wacc - a.terminal_growth);
  const pvTerminal = terminalValue / (1 + a.wacc) ** YEARS;
  const enterpriseValue = pvSum + pvTerminal;
  const equityValue = enterpriseValue - a.net_debt;
  return {
    years, terminalValue, pvTerminal, enterpriseValue, equityValue,
    perShare: equityValue / a.shares,
  };
}
