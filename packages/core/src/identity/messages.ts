const MAX_ECHOED_LENGTH = 200;

/**
 * Quotes a client- or token-supplied value for a refusal message: JSON string syntax (so
 * control characters are escaped) and at most 200 characters. Never pass a secret.
 */
export function quoted(value: string): string {
  return JSON.stringify(value.length > MAX_ECHOED_LENGTH ? `${value.slice(0, MAX_ECHOED_LENGTH)}…` : value);
}
