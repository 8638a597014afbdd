// Line helpers shared by the reply, trailer, function and anchoring readers.

/** Lines of a text with CRLF and lone CR read as LF (the regex runs only when there is a CR). */
export function splitLines(text: string): string[] {
  return (text.includes('\r') ? text.replace(/\r\n?/g, '\n') : text).split('\n');
}

/**
 * s.trim() === '' (also /^\s*$/), without building the trimmed string: leading spaces and
 * tabs are skipped, printable ASCII ends it, anything else is left to trim().
 */
export function isBlank(s: string): boolean {
  for (let k = 0; k < s.length; k++) {
    const c = s.charCodeAt(k);
    if (c === 0x20 || c === 0x09) continue;
    if (c > 0x20 && c < 0x7f) return false;
    return s.trim() === '';
  }
  return true;
}
