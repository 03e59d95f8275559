import { mkdir, readFile, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { pino } from 'pino';
import { describe, expect, it } from 'vitest';
import { useTempDir } from '../test-support/temp-dir.js';
import { openLineageFixtures } from '../../test/openlineage-schema/fixtures.js';
import { createOpenLineageValidator } from '../../test/openlineage-schema/validate.js';
import { createFileSink } from './openlineage-file.js';
import { combineSinks } from './openlineage.js';
import type { RunEvent, RunEventType } from './types.js';

const PRODUCER = 'https://github.com/sluice-gateway/sluice/tree/0.1.0';
const validator = createOpenLineageValidator();
const tempDir = useTempDir('sluice-openlineage-file-');
const silent = pino({ level: 'silent' });

function runEvent(n: number, eventType: RunEventType): RunEvent {
  return { eventType, eventTime: Date.UTC(2025, 0, 1) + n, lineage: openLineageFixtures.lineage, ...(eventType === 'FAIL' ? { error: 'deadlock detected' } : {}) };
}

async function lines(path: string): Promise<Record<string, unknown>[]> {
  const text = await readFile(path, 'utf8');
  expect(text.endsWith('\n')).toBe(true);
  return text
    .slice(0, -1)
    .split('\n')
    .map((line) => JSON.parse(line) as Record<string, unknown>);
}

describe('createFileSink', () => {
  it('appends one valid OpenLineage event per line, in order', async () => {
    const path = join(tempDir(), 'lineage', 'events.jsonl');
    const sink = createFileSink({ path, producer: PRODUCER, logger: silent });
    const types: RunEventType[] = ['START', 'RUNNING', 'RUNNING', 'COMPLETE', 'START', 'FAIL'];
    types.forEach((type, n) => sink.emit(runEvent(n, type)));
    await sink.flush();
    const written = await lines(path);
    expect(written.map((e) => e['eventType'])).toEqual(types);
    for (const event of written) expect(validator.validate(event)).toEqual([]);
    expect(sink.stats()).toEqual({ written: 6, buffered: 0, dropped: 0 });
    await sink.close();
  });

  it('appends to an existing file and keeps events emitted during a flush', async () => {
    const path = join(tempDir(), 'events.jsonl');
    await writeFile(path, '{"earlier":true}\n');
    const sink = createFileSink({ path, producer: PRODUCER, logger: silent });
    sink.emit(runEvent(0, 'START'));
    const flushed = sink.flush();
    sink.emit(runEvent(1, 'COMPLETE'));
    await flushed;
    await sink.close();
    const written = await lines(path);
    expect(written[0]).toEqual({ earlier: true });
    expect(written.slice(1).map((e) => e['eventType'])).toEqual(['START', 'COMPLETE']);
  });

  it('drops events past the buffer bound and after close, and never throws', async () => {
    const path = join(tempDir(), 'events.jsonl');
    const sink = createFileSink({ path, producer: PRODUCER, logger: silent, maxBufferedBytes: 10 });
    expect(() => sink.emit(runEvent(0, 'START'))).not.toThrow();
    expect(sink.stats().dropped).toBe(1);
    await sink.close();
    expect(() => sink.emit(runEvent(1, 'START'))).not.toThrow();
    expect(sink.stats().dropped).toBe(2);
  });

  it('keeps the events and logs when the file cannot be written, and writes them once it can', async () => {
    const dir = join(tempDir(), 'blocked');
    await writeFile(dir, 'not a directory');
    const logged: string[] = [];
    const logger = pino({ level: 'error' }, { write: (line: string) => void logged.push((JSON.parse(line) as { msg: string }).msg) });
    const path = join(dir, 'events.jsonl');
    const sink = createFileSink({ path, producer: PRODUCER, logger });
    sink.emit(runEvent(0, 'START'));
    await sink.flush(200);
    expect(sink.stats()).toMatchObject({ written: 0, buffered: 1 });
    expect(logged.some((msg) => msg.includes('writing run events failed'))).toBe(true);

    // The directory appears: the kept event is written with the next one.
    await rm(dir);
    await mkdir(dir);
    sink.emit(runEvent(1, 'COMPLETE'));
    await sink.close();
    expect((await lines(path)).map((e) => e['eventType'])).toEqual(['START', 'COMPLETE']);
  });

  it('works behind combineSinks with another file sink', async () => {
    const a = join(tempDir(), 'a.jsonl');
    const b = join(tempDir(), 'b.jsonl');
    const sink = combineSinks(createFileSink({ path: a, producer: PRODUCER, logger: silent }), createFileSink({ path: b, producer: PRODUCER, logger: silent }));
    sink.emit(runEvent(0, 'START'));
    sink.emit(runEvent(1, 'COMPLETE'));
    await sink.flush(1000);
    expect(await lines(a)).toEqual(await lines(b));
    await sink.close();
    expect(await lines(a)).toHaveLength(2);
  });
});
