// A tiny observable: models (wire client, document sync, presence) announce changes; views
// listen and re-render from the model. Nothing here knows about the DOM or the socket.

export class Emitter {
  #listeners = new Map();

  on(name, listener) {
    if (!this.#listeners.has(name)) this.#listeners.set(name, new Set());
    this.#listeners.get(name).add(listener);
    return () => this.#listeners.get(name)?.delete(listener);
  }

  emit(name, detail) {
    for (const listener of [...(this.#listeners.get(name) ?? [])]) {
      try {
        listener(detail);
      } catch (error) {
        // One broken view must not stop the others (or the wire client) from hearing news.
        console.error(`listener of ${name} failed`, error);
      }
    }
  }
}
