// Errors a source throws (as opposed to the InputError records it reports and goes on).

const WHAT = 'Give an mbox file (optionally gzip-compressed), a maildir folder, a folder of .eml/.mbox files, a .eml file or - for stdin.';

/**
 * An input path that cannot be opened at all (missing, permission, not mail). The CLI turns it
 * into exit status 2; the message says what to do next.
 */
export class InputOpenError extends Error {
  override readonly name = 'InputOpenError';
  /** The input as given on the command line. */
  readonly path: string;
  /** errno code (ENOENT, EACCES, ...) when the system gave one. */
  readonly code?: string;

  constructor(path: string, message: string, code?: string, cause?: unknown) {
    super(message, cause === undefined ? undefined : { cause });
    this.path = path;
    this.code = code;
  }

  /** Why an open/stat/readdir failed, in words ("no such file or folder", "permission denied"). */
  static reason(err: unknown): string {
    switch ((err as NodeJS.ErrnoException | undefined)?.code) {
      case 'ENOENT':
      case 'ENOTDIR':
        return 'no such file or folder';
      case 'EACCES':
      case 'EPERM':
        return 'permission denied';
      case 'ELOOP':
        return 'too many symbolic links';
      case 'EISDIR':
        return 'it is a folder';
      default:
        return err instanceof Error ? err.message : String(err);
    }
  }

  /** Build the error for a failed open/stat/readdir of `path`. */
  static from(path: string, err: unknown): InputOpenError {
    const code = (err as NodeJS.ErrnoException | undefined)?.code;
    const next =
      code === 'EACCES' || code === 'EPERM' ? `Check its permissions (or run as a user who can read it). ${WHAT}` : WHAT;
    return new InputOpenError(path, `cannot read '${path}': ${InputOpenError.reason(err)}. ${next}`, code, err);
  }

  /** A folder that holds neither a maildir nor mail files. */
  static noMail(path: string): InputOpenError {
    return new InputOpenError(
      path,
      `cannot read '${path}': the folder is not a maildir (no cur/ or new/) and holds no .eml/.mbox files. ${WHAT}`,
      'ENOMAIL',
    );
  }
}
