// review stage: run the rules over every patch mail of a thread. Findings attach to patch
// mails only, never to replies. Pure apart from the optional TreeView provider.
import type { Finding, MessageRecord, Thread } from '../model.js';
import type { KnowledgeBase, RuleSpec, TreeView } from '../rules/types.js';
import { runRules } from '../rules/engine.js';

export interface ReviewContext {
  rules: RuleSpec[];
  kb: KnowledgeBase;
  /** Gives the TreeView for a patch when --tree is set. */
  treeFor?: (record: MessageRecord) => TreeView | undefined;
}

export function reviewRecord(record: MessageRecord, ctx: ReviewContext): Finding[] {
  if (record.kind !== 'patch') return [];
  return runRules(record, ctx.rules, { kb: ctx.kb, tree: ctx.treeFor?.(record) });
}

export function reviewThread(thread: Thread, ctx: ReviewContext): Finding[] {
  const out: Finding[] = [];
  for (const m of thread.messages) if (m.record) out.push(...reviewRecord(m.record, ctx));
  return out;
}
