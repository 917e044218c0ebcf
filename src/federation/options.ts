/** Checks of the federation classes' numeric options, shared so that they refuse alike. */
import { ImppError } from '../errors.js';

/**
 * `value` when it is a safe integer of at least 1. Zero, NaN and fractions would switch a bound
 * off or make it unbounded.
 * @throws `ERR_INVALID_ARGUMENT` naming the option otherwise.
 */
export function positiveInteger(name: string, value: number): number {
  if (!Number.isSafeInteger(value) || value < 1) {
    throw new ImppError('ERR_INVALID_ARGUMENT', `${name} must be a positive integer`);
  }
  return value;
}
