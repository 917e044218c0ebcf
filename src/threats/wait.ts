/** The one pause the threats use between steps (bounded waits are each threat's own). */

/** Resolves after `ms`. */
export function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}
