import { it } from 'vitest';

/**
 * A test that runs only when its server is there (`requireService` has already said loudly
 * when it is not, and fails the run under SLUICE_REQUIRE_SERVICES=1).
 */
export function liveTest(isAvailable: () => boolean) {
  return (name: string, body: () => Promise<void>, timeout?: number): void => {
    it(
      name,
      async () => {
        if (!isAvailable()) return;
        await body();
      },
      timeout,
    );
  };
}
