// The way in. The server decides which form applies: dev login (a name and a role) in dev
// mode, else a token minted by `coedit token` or the identity provider.

import { h } from "../dom.js";

const ROLES = ["analyst", "reviewer", "viewer", "admin"];

export function renderSignIn(root, session, { onGuest } = {}) {
  const error = h("p", { class: "form-error", role: "alert", id: "sign-in-error" });
  const failed = (e) => { error.textContent = e.message; };
  const devForm = h("form", { id: "login", class: "stack",
    onsubmit: async (event) => {
      event.preventDefault();
      const form = new FormData(event.target);
      try {
        await session.devLogin(Object.fromEntries(form));
      } catch (e) { failed(e); }
    } },
    h("label", {}, "Name", h("input", { name: "name", required: true, autocomplete: "name",
                                        placeholder: "e.g. Ann Analyst", maxlength: "100" })),
    h("label", {}, "Role", h("select", { name: "role" }, ROLES.map((r) => h("option", {}, r)))),
    h("label", {}, "Team (tenant)", h("input", { name: "tenant", value: "default", maxlength: "100" })),
    h("button", { class: "primary", type: "submit" }, "Sign in"),
    onGuest ? h("button", { type: "button", class: "quiet", onclick: onGuest },
                "Browse as a guest (read only)") : null);
  const tokenForm = h("form", { id: "token-login", class: "stack",
    onsubmit: async (event) => {
      event.preventDefault();
      try {
        await session.useToken(new FormData(event.target).get("token"));
      } catch (e) { failed(e); }
    } },
    h("label", {}, "Access token",
      h("textarea", { name: "token", rows: 4, required: true, spellcheck: false,
                      autocomplete: "off", placeholder: "eyJhbGciOi…" })),
    h("p", { class: "hint" }, "Ask your administrator for a token, or run ",
      h("code", {}, "coedit token --user you --name \"Your Name\" --role analyst --tenant team"), "."),
    h("button", { class: "primary", type: "submit" }, "Sign in with token"));
  root.replaceChildren(h("section", { class: "sign-in card", "aria-labelledby": "sign-in-title" },
    h("h1", { id: "sign-in-title" }, "Sign in to coedit"),
    h("p", { class: "lede" }, session.devAuth
      ? "Development mode: pick any name and role."
      : "This server requires a token."),
    session.devAuth ? devForm : tokenForm,
    error));
  root.querySelector("input, textarea")?.focus();
}
