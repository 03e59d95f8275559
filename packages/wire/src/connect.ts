import net from 'node:net';

/**
 * Opens a TCP connection (no Nagle delay) that gives up when `signal` aborts. Failures are
 * reported through `fail(message, cause)`, so that each dialect raises its own error type:
 * `connecting to host:port timed out`, or `cannot connect to host:port: ECONNREFUSED`.
 */
export function connectTcp(host: string, port: number, signal: AbortSignal, fail: (message: string, cause?: unknown) => Error): Promise<net.Socket> {
  return new Promise((resolve, reject) => {
    if (signal.aborted) {
      reject(fail(`connecting to ${host}:${port} timed out`));
      return;
    }
    const socket = net.connect({ host, port });
    socket.setNoDelay(true);
    const onAbort = () => {
      socket.destroy();
      reject(fail(`connecting to ${host}:${port} timed out`));
    };
    signal.addEventListener('abort', onAbort, { once: true });
    socket.once('connect', () => {
      signal.removeEventListener('abort', onAbort);
      socket.removeAllListeners('error');
      resolve(socket);
    });
    socket.once('error', (err) => {
      signal.removeEventListener('abort', onAbort);
      reject(fail(`cannot connect to ${host}:${port}: ${(err as NodeJS.ErrnoException).code ?? err.message}`, err));
    });
  });
}
