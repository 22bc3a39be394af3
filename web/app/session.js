// Who the page acts as. The server says which way in applies (`GET /api/me`, PROTOCOL
// section 2): with dev login on, a name and role are enough and the server sets the session
// cookie; with `COEDIT_SECRET` set and dev login off, the user pastes a token, which this
// module keeps for the tab (sessionStorage) and hands to HTTP (bearer) and WebSocket (?token=).

import { Emitter } from "./emitter.js";

const TOKEN_KEY = "coedit.token";

export class Session extends Emitter {
  constructor(api) {
    super();
    this.api = api;
    this.user = null;      // {id, name, roles, tenant}
    this.anonymous = true;
    this.devAuth = false;  // whether dev login is offered
    this.token = sessionStorage.getItem(TOKEN_KEY);
  }

  get signedIn() {
    return this.user !== null && !this.anonymous;
  }

  mayEdit() {
    return this.signedIn && this.user.roles.some((r) => ["admin", "analyst", "bot"].includes(r));
  }

  isAdmin() {
    return this.signedIn && this.user.roles.includes("admin");
  }

  // Ask the server who we are; false when it wants a token (401).
  async refresh() {
    this.api.token = this.token;
    try {
      const me = await this.api.get("/api/me");
      this.user = me.user;
      this.anonymous = me.anonymous;
      this.devAuth = me.dev_auth;
      return true;
    } catch (error) {
      if (error.status !== 401) throw error;
      if (this.token) this.#forgetToken();
      this.user = null;
      this.anonymous = true;
      this.devAuth = false;
      return false;
    }
  }

  async devLogin({ name, role, tenant }) {
    this.#forgetToken();
    await this.api.post("/api/dev/login", { name, role, tenant: tenant || undefined });
    await this.refresh();
    this.emit("change", this);
  }

  async useToken(token) {
    this.token = token.trim();
    const ok = await this.refresh();
    if (!ok) throw new Error("The server did not accept this token (unknown, forged or expired).");
    sessionStorage.setItem(TOKEN_KEY, this.token);
    this.emit("change", this);
  }

  // The WebSocket's address; a pasted token goes in the query, the cookie needs nothing.
  socketUrl() {
    const scheme = location.protocol === "https:" ? "wss" : "ws";
    const query = this.token ? `?token=${encodeURIComponent(this.token)}` : "";
    return `${scheme}://${location.host}/ws${query}`;
  }

  signOut() {
    this.#forgetToken();
    this.user = null;
    this.anonymous = true;
    this.emit("change", this);
  }

  #forgetToken() {
    this.token = null;
    this.api.token = null;
    sessionStorage.removeItem(TOKEN_KEY);
  }
}
