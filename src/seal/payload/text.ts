/**
 * Text helpers shared by the payload codecs: strict UTF-8, well-formed strings and RFC 3339
 * date-times. Internal to `src/seal/payload/`.
 *
 * @example
 * ```ts
 * isRfc3339DateTime('2000-12-13T13:40:00-08:00'); // true
 * ```
 */

const strictDecoder = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true });
const encoder = new TextEncoder();

/** Encodes a string as UTF-8. Callers check {@link isWellFormed} first: lone surrogates would become U+FFFD. */
export function utf8Encode(s: string): Uint8Array {
  return encoder.encode(s);
}

/**
 * Decodes strict UTF-8: overlong forms, surrogates, code points above U+10FFFF and truncated
 * sequences are refused (`undefined`), never replaced; a leading BOM is kept as U+FEFF.
 */
export function utf8DecodeStrict(bytes: Uint8Array): string | undefined {
  try {
    return strictDecoder.decode(bytes);
  } catch {
    return undefined;
  }
}

const LONE_SURROGATE = /[\uD800-\uDFFF]/u;

/** `true` when `s` has no lone surrogate, so that it has an exact UTF-8 encoding. */
export function isWellFormed(s: string): boolean {
  return !LONE_SURROGATE.test(s);
}

// RFC 3339 §5.6:
//   date-fullyear = 4DIGIT; date-month = 2DIGIT; date-mday = 2DIGIT
//   time-hour = 2DIGIT; time-minute = 2DIGIT; time-second = 2DIGIT; time-secfrac = "." 1*DIGIT
//   time-numoffset = ("+" / "-") time-hour ":" time-minute; time-offset = "Z" / time-numoffset
//   date-time = full-date "T" full-time
// The "T" and "Z" may be lower case (§5.6 NOTE); we accept only upper case, as RFC 3862's
// examples and the PIDF schema's xs:dateTime use, so that one instant has fewer spellings.
const RFC3339 =
  /^(\d{4})-(\d{2})-(\d{2})T(\d{2}):(\d{2}):(\d{2})(?:\.\d{1,9})?(?:Z|([+-])(\d{2}):(\d{2}))$/;

function daysInMonth(year: number, month: number): number {
  if (month === 2) {
    const leap = (year % 4 === 0 && year % 100 !== 0) || year % 400 === 0;
    return leap ? 29 : 28;
  }
  return [4, 6, 9, 11].includes(month) ? 30 : 31;
}

/**
 * `true` when `s` is an RFC 3339 `date-time` (§5.6) with valid field ranges (§5.7): month 1-12,
 * day within the month, hour 0-23, minute 0-59, second 0-60 (leap second), offset hour 0-23.
 */
export function isRfc3339DateTime(s: string): boolean {
  const m = RFC3339.exec(s);
  if (m === null) return false;
  const [year, month, day, hour, minute, second] = [m[1], m[2], m[3], m[4], m[5], m[6]].map(
    Number,
  ) as [number, number, number, number, number, number];
  if (month < 1 || month > 12) return false;
  if (day < 1 || day > daysInMonth(year, month)) return false;
  if (hour > 23 || minute > 59 || second > 60) return false;
  if (m[7] !== undefined && (Number(m[8]) > 23 || Number(m[9]) > 59)) return false;
  return true;
}
