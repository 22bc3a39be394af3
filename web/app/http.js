// The HTTP side of the protocol: JSON in and out, the caller's token as a bearer header when
// the page signed in with a token (with dev login the session cookie rides along instead),
// and every error body turned into an ApiError carrying the protocol's code.

export class ApiError extends Error {
  constructor(status, body) {
    const error = body?.error ?? {};
    super(error.message || `HTTP ${status}`);
    this.status = status;
    this.code = error.code || "internal";
    this.body = error;
  }
}

export class Api {
  constructor() {
    this.token = null; // set by the sign-in when a pasted token is in use
  }

  async call(path, { method = "GET", body, headers = {} } = {}) {
    const sent = { ...headers };
    if (this.token) sent.Authorization = `Bearer ${this.token}`;
    if (body !== undefined) sent["Content-Type"] = "application/json";
    const response = await fetch(path, {
      method, headers: sent, credentials: "same-origin",
      body: body === undefined ? undefined : JSON.stringify(body),
    });
    const text = await response.text();
    const parsed = text ? JSON.parse(text) : null;
    if (!response.ok) throw new ApiError(response.status, parsed);
    return parsed;
  }

  get(path) {
    return this.call(path);
  }

  post(path, body) {
    return this.call(path, { method: "POST", body });
  }
}
