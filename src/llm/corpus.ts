// Running the LLM pass over a whole corpus (the CLI's `review --llm` and `eval --llm`):
// earlier versions of a patch found through the series table, and a bounded pool so that a
// corpus of thousands of patches never has more than a few threads waiting in memory.
import type { MessageRecord, Series, Thread } from '../model.js';
import type { ThreadSkeleton } from '../thread/assemble.js';

export interface CorpusView {
  threads: Iterable<ThreadSkeleton>;
  series: Iterable<Series>;
  thread(t: ThreadSkeleton): Thread;
}

/** Earlier versions of patches: their Message-IDs and the threads holding them. */
export class EarlierVersions {
  private seriesById = new Map<string, Series>();
  private seriesOfPatch = new Map<string, Series>();
  private skeletonOf = new Map<string, ThreadSkeleton>();

  constructor(private corpus: CorpusView) {
    for (const s of corpus.series) {
      this.seriesById.set(s.id, s);
      for (const p of s.patches) if (p) this.seriesOfPatch.set(p, s);
      for (const p of s.extra) this.seriesOfPatch.set(p, s);
    }
    for (const t of corpus.threads) for (const m of t.messages) if (!m.ghost) this.skeletonOf.set(m.messageId, t);
  }

  /** Up to `depth` earlier versions of the patch (same position in the series), newest first. */
  of(rec: MessageRecord, current: Thread | undefined, depth = 5): { ids: string[]; threads: Thread[] } {
    let s = this.seriesOfPatch.get(rec.messageId);
    if (!s) return { ids: [], threads: [] };
    const at = s.patches.indexOf(rec.messageId);
    const ids: string[] = [];
    const seen = new Set<string>([s.id]);
    for (let k = 0; k < depth && s?.previousVersion && !seen.has(s.previousVersion); k++) {
      seen.add(s.previousVersion);
      s = this.seriesById.get(s.previousVersion);
      const id = s && at >= 0 ? (s.patches[at] ?? null) : null;
      if (id) ids.push(id);
    }
    const threads: Thread[] = [];
    const done = new Set<ThreadSkeleton>();
    for (const id of ids) {
      const sk = this.skeletonOf.get(id);
      if (!sk || done.has(sk)) continue;
      done.add(sk);
      threads.push(current && current.root === sk.root ? current : this.corpus.thread(sk));
    }
    return { ids, threads };
  }
}

/** Runs async jobs with at most `limit` in flight; `add` waits while the pool is full. */
export class JobPool {
  private running = new Set<Promise<void>>();
  constructor(private limit: number) {}
  async add(job: () => Promise<void>): Promise<void> {
    while (this.running.size >= this.limit) await Promise.race(this.running);
    // A job's failure is its own business (the LLM reviewer reports instead of throwing).
    const p: Promise<void> = job()
      .catch(() => {})
      .finally(() => this.running.delete(p));
    this.running.add(p);
  }
  async drain(): Promise<void> {
    while (this.running.size) await Promise.race(this.running);
  }
}
