/**
 * A bounded view of a JSON value for lists and pages that must stay small whatever a job
 * carries (payloads and results may be up to 1 MiB each). One helper for every reader.
 */

/** Default characters of JSON text a preview keeps (2 KiB). */
export const PREVIEW_CHARS = 2048;

export interface Preview {
  /** The value itself when its JSON text fits, else the first `maxChars` of that text. */
  value: unknown;
  /** True when `value` is a cut string of the JSON text, not the value. */
  truncated: boolean;
  /** Length of the whole JSON text, in characters. */
  chars: number;
}

/** The value when its JSON text is at most `maxChars` long, else the start of that text. */
export function preview(value: unknown, maxChars: number = PREVIEW_CHARS): Preview {
  if (value === undefined || value === null) return { value: null, truncated: false, chars: 4 };
  const text = JSON.stringify(value) ?? "null";
  if (text.length <= maxChars) return { value, truncated: false, chars: text.length };
  return { value: text.slice(0, maxChars), truncated: true, chars: text.length };
}
