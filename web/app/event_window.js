// Where a look back over the event stream starts: the `since` that makes the stream replay
// the events of the last N minutes and nothing older (PROTOCOL section 8).
//
// The log is addressed by `seq`, not by time, and `seq` is shared by every tenant, so "the
// last hour" cannot be computed from the head. It can be searched: `GET /api/events?since=X
// &limit=1` answers the tenant's first event after X, and events are stamped in `seq` order
// (to within a transaction's few milliseconds), so "the first event after X is recent" holds
// from some X on and never before it. A gallop from the tenant's first event and a bisection
// find that X in about 2·log2(events) one-row reads, each an index lookup on the server,
// whatever the size of the log: a dashboard opened on a tenant with years of history reads
// a dozen tiny pages, not the years.

export async function seqBefore(api, cutoffMs) {
  let probes = 0;
  // The tenant's first event after `since` (or null): one row of the log.
  const firstAfter = async (since) => {
    probes += 1;
    const page = await api.get(`/api/events?since=${since}&limit=1`);
    return page.events[0] ?? null;
  };
  const recent = (event) => event === null || Date.parse(event.ts) >= cutoffMs;

  const first = await firstAfter(0);
  if (recent(first)) return { since: 0, probes };
  // Invariant: the first event after `old` is older than the cutoff; after `young` it is not.
  let old = first.seq - 1;
  let young = null;
  for (let step = 1; young === null; step *= 2) {
    const probe = old + step;
    const found = await firstAfter(probe);
    if (recent(found)) young = probe;
    else old = Math.max(probe, found.seq - 1);
  }
  while (young - old > 1) {
    const middle = Math.floor((old + young) / 2);
    const found = await firstAfter(middle);
    if (recent(found)) young = middle;
    else old = Math.max(middle, found.seq - 1);
  }
  return { since: young, probes };
}
