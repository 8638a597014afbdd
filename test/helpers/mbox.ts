// Reading the shared mboxrd fixtures in tests: one splitter, one mailparser decode.
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { simpleParser, type ParsedMail } from 'mailparser';

export const SHARED = join(process.cwd(), '../shared/fixtures');

/** The mail texts of an mboxrd file, "From " envelopes removed and ">From " unescaped one level. */
export function splitMboxrd(text: string): string[] {
  return text
    .split(/^From mboxrd@z .*\n/m)
    .filter((p) => p.trim() !== '')
    .map((p) => p.replace(/^>(>*From )/gm, '$1'));
}

/** The messages of a shared mboxrd fixture, decoded by mailparser, plus each one's raw (undecoded) body. */
export async function readFixtureMails(name: string): Promise<Array<{ mail: ParsedMail; rawBody: string }>> {
  const out: Array<{ mail: ParsedMail; rawBody: string }> = [];
  for (const m of splitMboxrd(readFileSync(join(SHARED, name), 'latin1'))) {
    const mail = await simpleParser(Buffer.from(m, 'latin1'));
    out.push({ mail, rawBody: m.slice(m.indexOf('\n\n') + 2) });
  }
  return out;
}
