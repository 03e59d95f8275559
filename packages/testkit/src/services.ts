import net from 'node:net';

/** True when something accepts TCP connections at host:port within the timeout. */
export function isReachable(host: string, port: number, timeoutMs = 1000): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = net.connect({ host, port });
    const done = (ok: boolean) => {
      socket.destroy();
      resolve(ok);
    };
    socket.setTimeout(timeoutMs, () => done(false));
    socket.once('connect', () => done(true));
    socket.once('error', () => done(false));
  });
}

/** Whether CI demands every service (SLUICE_REQUIRE_SERVICES=1). */
export function servicesRequired(): boolean {
  return process.env.SLUICE_REQUIRE_SERVICES === '1';
}

/**
 * Checks a server a suite needs. When it is missing: under SLUICE_REQUIRE_SERVICES=1 this
 * throws (the run fails); otherwise it prints one loud line and returns false so the suite
 * can stand down.
 */
export async function requireService(name: string, host: string, port: number): Promise<boolean> {
  if (await isReachable(host, port)) return true;
  const line = `SERVICE MISSING: ${name} is not reachable at ${host}:${port}; its tests did NOT run`;
  if (servicesRequired()) throw new Error(`${line} (SLUICE_REQUIRE_SERVICES=1)`);
  process.stderr.write(`\n!!!!! ${line} !!!!!\n\n`);
  return false;
}
