// The input stage: command-line inputs -> raw messages, in order.
//   mbox (plain or gzip, detected by magic), maildir, folder of .eml/.mbox files, .eml file, "-" (stdin).
import { constants } from 'node:fs';
import { access, stat } from 'node:fs/promises';
import { join } from 'node:path';
import type { InputError, RawMessage } from '../model.js';
import { log } from '../log.js';
import { InputOpenError } from './errors.js';
import { isMaildir, listFiles, readMailFile, readMaildir } from './maildir.js';
import type { MboxFormat } from './mbox.js';
import { readSniffed, type ReadOptions } from './stream.js';

export { InputOpenError } from './errors.js';
export {
  splitMbox,
  splitMboxBuffer,
  MboxSplitter,
  isEnvelopeLine,
  isEnvelopeText,
  DEFAULT_MAX_MESSAGE_BYTES,
  type MboxFormat,
  type SplitMboxOptions,
} from './mbox.js';
export { readMaildir, isMaildir } from './maildir.js';

export interface ReadInputsOptions {
  /** Problems inside readable inputs (bad or oversized message, truncated gzip...). Default: logged. */
  onError?: (e: InputError) => void;
  /** What "-" reads. Default process.stdin. */
  stdin?: NodeJS.ReadableStream;
  /** mbox escaping of the mbox inputs. Default 'mboxrd'. */
  format?: MboxFormat;
  /** Per message. Default 64 MiB. */
  maxMessageBytes?: number;
}

/** Files of a plain folder that are read (each is sniffed: gzip, mbox or one message). */
const MAIL_FILE = /\.(eml|mbox|mbx|mail|patch)(\.gz)?$/i;
/** Names that mean "mbox" even when the first line is not an envelope (then it is reported). */
const MBOX_NAME = /(\.(mbox|mbx)(\.gz)?|^mbox)$/i;

function baseName(path: string): string {
  const i = path.replace(/[\\/]+$/, '').search(/[^\\/]*$/);
  return path.slice(i);
}

type Kind = { kind: 'stdin' } | { kind: 'maildir' } | { kind: 'folder'; files: string[] } | { kind: 'file' };

/** What an input is; throws InputOpenError when it cannot be read. */
async function classify(input: string): Promise<Kind> {
  if (input === '-') return { kind: 'stdin' };
  let st;
  try {
    st = await stat(input);
  } catch (err) {
    throw InputOpenError.from(input, err);
  }
  if (!st.isDirectory()) {
    // regular file, FIFO, /dev/stdin...: check now that it can be opened, before reading anything
    try {
      await access(input, constants.R_OK);
    } catch (err) {
      throw InputOpenError.from(input, err);
    }
    return { kind: 'file' };
  }
  if (await isMaildir(input)) return { kind: 'maildir' };
  let names: string[];
  try {
    names = await listFiles(input);
  } catch (err) {
    throw InputOpenError.from(input, err);
  }
  const files = names.filter((n) => MAIL_FILE.test(n));
  if (files.length === 0) throw InputOpenError.noMail(input);
  return { kind: 'folder', files };
}

/**
 * Total size on disk of the inputs when every one is a regular file (mbox, .eml, .gz), else
 * null (stdin, folders, anything unreadable: their size is not known up front).
 */
export async function plainFilesBytes(inputs: string[]): Promise<number | null> {
  let total = 0;
  for (const input of inputs) {
    if (input === '-') return null;
    try {
      const st = await stat(input);
      if (!st.isFile()) return null;
      total += st.size;
    } catch {
      return null;
    }
  }
  return total;
}

/**
 * Read every input in order and yield its raw messages. All inputs are checked first, so a missing
 * or unreadable one throws InputOpenError (with a message saying what to do) before anything is
 * read. Problems inside a readable input never throw: they go to opts.onError and reading goes on.
 *
 * ref.source: "path:offset" for mbox messages ("-:offset" for stdin), the file path for maildir and
 * .eml files ("-:0" for a single message on stdin). Offsets count decompressed bytes for gzip input.
 */
export async function* readInputs(inputs: string[], opts: ReadInputsOptions = {}): AsyncGenerator<RawMessage> {
  const ro: ReadOptions = {
    format: opts.format,
    maxMessageBytes: opts.maxMessageBytes,
    onError: opts.onError ?? ((e) => log.warn({ source: e.source }, e.message)),
  };
  const kinds: Kind[] = [];
  for (const input of inputs) kinds.push(await classify(input));

  for (let i = 0; i < inputs.length; i++) {
    const input = inputs[i];
    const k = kinds[i];
    switch (k.kind) {
      case 'stdin':
        yield* readSniffed(opts.stdin ?? process.stdin, '-', '-:0', false, ro);
        break;
      case 'maildir':
        yield* readMaildir(input, ro);
        break;
      case 'folder':
        for (const name of k.files) yield* readMailFile(join(input, name), ro, MBOX_NAME.test(name), 'report');
        break;
      case 'file':
        yield* readMailFile(input, ro, MBOX_NAME.test(baseName(input)), 'throw');
        break;
    }
  }
}
