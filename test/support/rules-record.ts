// Records for the rule tests: the real mail stage (src/mail/record.ts), fed from the real
// fixtures or from example texts.
import { readFileSync } from 'node:fs';
import type { MessageRecord } from '../../src/model.js';
import { recordFromText } from '../../src/mail/record.js';
import { splitMboxrd } from '../helpers/mbox.js';
import { join } from 'node:path';

export const FIXTURES = join(process.cwd(), '../shared/fixtures');

/** Split an mboxrd file into mail texts (">From " unescaped). */
export function readMbox(path: string): string[] {
  return splitMboxrd(readFileSync(path, 'utf8'));
}

export function makeRecord(text: string): Promise<MessageRecord> {
  return recordFromText(text);
}

export async function mboxRecords(path: string): Promise<MessageRecord[]> {
  const out: MessageRecord[] = [];
  for (const m of readMbox(path)) out.push(await makeRecord(m));
  return out;
}
