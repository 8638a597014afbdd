// Maildir folders and single mail files.
import { open, readdir, stat } from 'node:fs/promises';
import { join } from 'node:path';
import type { RawMessage } from '../model.js';
import { InputOpenError } from './errors.js';
import { readSniffed, type ReadOptions } from './stream.js';

async function isDir(path: string): Promise<boolean> {
  try {
    return (await stat(path)).isDirectory();
  } catch {
    return false;
  }
}

/** A maildir has cur/ and/or new/ (tmp/ holds deliveries in progress and is never read). */
export async function isMaildir(dir: string): Promise<boolean> {
  return (await isDir(join(dir, 'cur'))) || (await isDir(join(dir, 'new')));
}

/**
 * Regular (or symlinked) files of a folder, dotfiles left out, sorted by name (code-unit order, so
 * the result does not depend on the locale; maildir names start with the delivery time).
 */
export async function listFiles(dir: string): Promise<string[]> {
  const entries = await readdir(dir, { withFileTypes: true });
  const names: string[] = [];
  for (const e of entries) {
    if (e.name.startsWith('.')) continue;
    if (e.isFile()) names.push(e.name);
    else if (e.isSymbolicLink()) {
      try {
        if ((await stat(join(dir, e.name))).isFile()) names.push(e.name);
      } catch {
        // a dangling link is not mail
      }
    }
  }
  return names.sort((a, b) => (a < b ? -1 : a > b ? 1 : 0));
}

/** Bytes a file read asks for (messages are copied out of the chunks, so none is pinned). */
const READ_CHUNK = 256 * 1024;

/**
 * Messages of one mail file: gzip sniffed by magic, an mbox if its first line is an envelope (or
 * `mboxByName`), else one message with ref.source = the path.
 * openErrors 'throw': the file was named by the user (InputOpenError); 'report': it was found in a
 * folder (reported through onError, the run goes on).
 */
export async function* readMailFile(
  path: string,
  opts: ReadOptions,
  mboxByName: boolean,
  openErrors: 'throw' | 'report',
): AsyncGenerator<RawMessage> {
  let fh;
  try {
    fh = await open(path, 'r');
  } catch (err) {
    if (openErrors === 'throw') throw InputOpenError.from(path, err);
    opts.onError({ source: path, message: `cannot read this file: ${InputOpenError.reason(err)}; skipped` });
    return;
  }
  // 256 KB reads: with the default 64 KB, reading a 200 MB mbox cost the main thread twice the CPU.
  const rs = fh.createReadStream({ autoClose: true, highWaterMark: READ_CHUNK });
  try {
    yield* readSniffed(rs, path, path, mboxByName, opts);
  } finally {
    rs.destroy();
  }
}

/** Messages of a maildir: cur/ then new/, each sorted by file name; tmp/ and dotfiles skipped. */
export async function* readMaildir(dir: string, opts: ReadOptions): AsyncGenerator<RawMessage> {
  for (const sub of ['cur', 'new']) {
    const d = join(dir, sub);
    if (!(await isDir(d))) continue;
    let names: string[];
    try {
      names = await listFiles(d);
    } catch (err) {
      throw InputOpenError.from(d, err);
    }
    for (const name of names) {
      // Maildir files are single messages; a file can vanish between listing and reading (a mail
      // client moving new/ to cur/), which is reported, not fatal.
      yield* readMailFile(join(d, name), opts, false, 'report');
    }
  }
}
