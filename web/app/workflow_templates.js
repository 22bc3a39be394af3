// Workflow templates over HTTP (PROTOCOL section 13), for the template builder: list, read,
// create a draft, save a changed draft (a published template becomes a draft of the next
// version), publish. The server validates; its `bad_request` names the first fault, e.g.
// `steps[2].config: checklist: ...`, and `faultOf` says which step that is.

export class WorkflowTemplates {
  constructor(api) {
    this.api = api;
  }

  async list() {
    const items = [];
    let cursor = null;
    do {
      const page = await this.api.get(`/api/workflows/templates?limit=200${cursor ? `&cursor=${encodeURIComponent(cursor)}` : ""}`);
      items.push(...page.items);
      cursor = page.next;
    } while (cursor && items.length < 1000);
    return items;
  }

  get(id) {
    return this.api.get(`/api/workflows/templates/${encodeURIComponent(id)}`);
  }

  create(name, description) {
    return this.api.post("/api/workflows/templates", { name, description, steps: [] });
  }

  save(id, { name, description, steps }) {
    return this.api.call(`/api/workflows/templates/${encodeURIComponent(id)}`,
                         { method: "PATCH", body: { name, description, steps } });
  }

  publish(id) {
    return this.api.post(`/api/workflows/templates/${encodeURIComponent(id)}/publish`);
  }
}

// The step a server message points at (`steps[N]...`), or null.
export function faultOf(message) {
  const match = /steps\[(\d+)\]/.exec(message ?? "");
  return match ? Number(match[1]) : null;
}
