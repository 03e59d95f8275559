/**
 * Checks of docs/deploy: the Kubernetes manifests (parsed, validated against the Kubernetes API
 * schemas bundled by kubernetes-models, cross-referenced with each other, with the gateway's
 * config schema and with the routes the admin listener serves) and the Dockerfile (targeted
 * lint rules). Nothing is built or applied: no image registry or cluster is reachable here.
 */
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, posix } from 'node:path';
import { fileURLToPath } from 'node:url';
import { ConfigMap, Secret, Service } from 'kubernetes-models/v1';
import { Deployment } from 'kubernetes-models/apps/v1';
import { PodDisruptionBudget } from 'kubernetes-models/policy/v1';
import { pino } from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parseAllDocuments } from 'yaml';
import { parseConfig, type LoadedConfig } from '../src/config/load.js';
import { splitHostPort } from '../src/config/schema.js';
import { dialects } from '../src/dialects.js';
import { startGateway, type RunningGateway } from '../src/gateway.js';

const ROOT = fileURLToPath(new URL('../../../', import.meta.url));
const DEPLOY = join(ROOT, 'docs/deploy');
const KUBE = join(DEPLOY, 'kubernetes');

/** Longest time the gateway takes to flush lineage, telemetry and the audit trail after its sessions end (OBSERVABILITY_CLOSE_MS). */
const FLUSH_BOUND_S = 15;

// ---- Loading the manifests

interface K8sObject {
  readonly apiVersion: string;
  readonly kind: string;
  readonly metadata: { readonly name: string; readonly labels?: Record<string, string>; readonly annotations?: Record<string, string> };
  readonly [key: string]: unknown;
}

interface Loaded {
  readonly file: string;
  readonly object: K8sObject;
}

function loadManifests(): Loaded[] {
  const out: Loaded[] = [];
  for (const name of readdirSync(KUBE).filter((f) => /\.ya?ml$/.test(f)).sort()) {
    const text = readFileSync(join(KUBE, name), 'utf8');
    for (const doc of parseAllDocuments(text)) {
      if ('errors' in doc && doc.errors.length > 0) throw new Error(`${name}: YAML: ${doc.errors.map((e) => e.message).join('; ')}`);
      const object = doc.toJS() as unknown;
      if (object === null || object === undefined) continue;
      out.push({ file: name, object: object as K8sObject });
    }
  }
  return out;
}

/** The Kubernetes API schema of each kind used, from kubernetes-models (validate() throws naming the bad field). */
const VALIDATORS: Readonly<Record<string, (o: K8sObject) => void>> = {
  'v1/ConfigMap': (o) => new ConfigMap(o as never).validate(),
  'v1/Secret': (o) => new Secret(o as never).validate(),
  'v1/Service': (o) => new Service(o as never).validate(),
  'apps/v1/Deployment': (o) => new Deployment(o as never).validate(),
  'policy/v1/PodDisruptionBudget': (o) => new PodDisruptionBudget(o as never).validate(),
};

/**
 * The bundled schemas accept unknown fields (as the API server does without strict field
 * validation): a misspelt probe or security setting would be silently ignored by the cluster.
 * These are the fields the manifests may use where a typo matters most.
 */
const KNOWN_KEYS: Readonly<Record<string, readonly string[]>> = {
  container: [
    'name', 'image', 'imagePullPolicy', 'command', 'args', 'env', 'envFrom', 'ports', 'startupProbe', 'livenessProbe', 'readinessProbe',
    'lifecycle', 'resources', 'securityContext', 'volumeMounts', 'workingDir',
  ],
  probe: ['httpGet', 'tcpSocket', 'exec', 'grpc', 'initialDelaySeconds', 'periodSeconds', 'timeoutSeconds', 'failureThreshold', 'successThreshold', 'terminationGracePeriodSeconds'],
  httpGet: ['path', 'port', 'host', 'scheme', 'httpHeaders'],
  containerSecurityContext: ['allowPrivilegeEscalation', 'readOnlyRootFilesystem', 'capabilities', 'runAsNonRoot', 'runAsUser', 'runAsGroup', 'privileged', 'seccompProfile'],
  podSecurityContext: ['runAsNonRoot', 'runAsUser', 'runAsGroup', 'fsGroup', 'seccompProfile', 'supplementalGroups'],
  podSpec: [
    'containers', 'initContainers', 'volumes', 'securityContext', 'terminationGracePeriodSeconds', 'automountServiceAccountToken', 'serviceAccountName',
    'topologySpreadConstraints', 'affinity', 'nodeSelector', 'tolerations', 'priorityClassName',
  ],
};

function unknownKeys(value: unknown, allowed: readonly string[]): string[] {
  if (value === null || typeof value !== 'object') return [];
  return Object.keys(value).filter((k) => !allowed.includes(k));
}

// ---- Small accessors over the untyped objects

type Json = Record<string, any>; // eslint-disable-line @typescript-eslint/no-explicit-any

const one = (objects: readonly Loaded[], kind: string, name?: string): Json => {
  const found = objects.filter((o) => o.object.kind === kind && (name === undefined || o.object.metadata.name === name));
  expect(found, `${kind}${name ? ` ${name}` : ''}`).toHaveLength(1);
  return found[0]!.object as Json;
};

function matches(selector: Record<string, string>, labels: Record<string, string>): boolean {
  return Object.entries(selector).every(([k, v]) => labels[k] === v);
}

/** Every ${NAME} the config text reads from the environment. */
function envNames(text: string): string[] {
  return [...new Set([...text.matchAll(/\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-[^}]*)?\}/g)].map((m) => m[1]!))];
}

// ---- The Dockerfile, as instructions

interface Instruction {
  readonly keyword: string;
  readonly args: string;
  /** Index of the build stage (FROM) it belongs to. */
  readonly stage: number;
}

function parseDockerfile(text: string): Instruction[] {
  const out: Instruction[] = [];
  let stage = -1;
  let pending = '';
  for (const raw of text.split('\n')) {
    const line = raw.replace(/\s+$/, '');
    if (pending === '' && (line.trim() === '' || line.trim().startsWith('#'))) continue;
    if (pending !== '' && line.trim().startsWith('#')) continue;
    if (line.endsWith('\\')) {
      pending += `${line.slice(0, -1)} `;
      continue;
    }
    const full = (pending + line).trim();
    pending = '';
    const m = /^([A-Za-z]+)\s+([\s\S]*)$/.exec(full);
    if (!m) throw new Error(`Dockerfile: cannot read the line: ${full}`);
    const keyword = m[1]!.toUpperCase();
    if (keyword === 'FROM') stage += 1;
    out.push({ keyword, args: m[2]!.trim(), stage });
  }
  if (pending !== '') throw new Error('Dockerfile: ends with a line continuation');
  return out;
}

/** The JSON (exec) form of an instruction's arguments. */
function execForm(args: string): string[] {
  const parsed = JSON.parse(args) as unknown;
  if (!Array.isArray(parsed) || !parsed.every((a) => typeof a === 'string')) throw new Error(`expected the exec form ["...", ...], got ${args}`);
  return parsed as string[];
}

// ---- The checks

describe('Kubernetes manifests in docs/deploy/kubernetes', () => {
  const objects = loadManifests();
  const config = one(objects, 'ConfigMap', 'sluice-config');
  const deployment = one(objects, 'Deployment', 'sluice');
  const podSpec = deployment.spec.template.spec as Json;
  const container = (podSpec.containers as Json[]).find((c) => c.name === 'sluice')!;
  const sluiceYaml = config.data['sluice.yaml'] as string;
  const podName = 'sluice-7c9d6b5f4-x2x7k';
  const filled: NodeJS.ProcessEnv = Object.fromEntries(envNames(sluiceYaml).map((n) => [n, n === 'POD_NAME' ? podName : `placeholder-${n.toLowerCase()}`]));
  /** The config as the gateway loads it in the pod, with every ${NAME} filled as the Deployment's env would. */
  let example: LoadedConfig | undefined;
  const loadedConfig = (): LoadedConfig => (example ??= parseConfig(sluiceYaml, '/etc/sluice/sluice.yaml', dialects, filled));

  it('every file parses, and every object has apiVersion, kind and a DNS-1123 metadata.name', () => {
    expect(objects.length).toBeGreaterThanOrEqual(7);
    for (const { file, object } of objects) {
      expect(typeof object.apiVersion, `${file}: apiVersion`).toBe('string');
      expect(typeof object.kind, `${file}: kind`).toBe('string');
      expect(object.metadata?.name, `${file}: metadata.name`).toMatch(/^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/);
    }
    const ids = objects.map((o) => `${o.object.kind}/${o.object.metadata.name}`);
    expect(new Set(ids).size, `duplicate objects in ${ids.join(', ')}`).toBe(ids.length);
  });

  it('every object validates against the Kubernetes API schema of its kind', () => {
    for (const { file, object } of objects) {
      const validate = VALIDATORS[`${object.apiVersion}/${object.kind}`];
      expect(validate, `${file}: no schema for ${object.apiVersion} ${object.kind}; add it to VALIDATORS`).toBeDefined();
      expect(() => validate!(object), `${file}: ${object.kind} ${object.metadata.name}`).not.toThrow();
    }
  });

  it('the schema check catches a broken object (the validators are live)', () => {
    const broken = structuredClone(deployment) as Json;
    broken.spec.replicas = 'two';
    expect(() => VALIDATORS['apps/v1/Deployment']!(broken as K8sObject)).toThrow(/replicas/);
    const noImage = structuredClone(deployment) as Json;
    noImage.spec.template.spec.containers[0].ports[0].containerPort = 'six';
    expect(() => VALIDATORS['apps/v1/Deployment']!(noImage as K8sObject)).toThrow(/containerPort/);
  });

  it('pod spec, container, probes and security contexts use only known fields', () => {
    expect(unknownKeys(podSpec, KNOWN_KEYS.podSpec!)).toEqual([]);
    expect(unknownKeys(podSpec.securityContext, KNOWN_KEYS.podSecurityContext!)).toEqual([]);
    for (const c of podSpec.containers as Json[]) {
      expect(unknownKeys(c, KNOWN_KEYS.container!), `container ${c.name}`).toEqual([]);
      expect(unknownKeys(c.securityContext, KNOWN_KEYS.containerSecurityContext!), `container ${c.name} securityContext`).toEqual([]);
      for (const p of ['startupProbe', 'livenessProbe', 'readinessProbe']) {
        expect(unknownKeys(c[p], KNOWN_KEYS.probe!), `${c.name}.${p}`).toEqual([]);
        expect(unknownKeys(c[p]?.httpGet, KNOWN_KEYS.httpGet!), `${c.name}.${p}.httpGet`).toEqual([]);
      }
    }
  });

  it("the ConfigMap's sluice.yaml validates against the gateway's config schema, every ${NAME} set by the Deployment", () => {
    const env = new Map<string, Json>((container.env as Json[]).map((e) => [e.name as string, e]));
    const names = envNames(sluiceYaml);
    expect(names.length).toBeGreaterThan(0);
    for (const name of names) expect(env.has(name), `${name} is read by sluice.yaml but not set in the Deployment's env`).toBe(true);
    // Each secret reference names a key the example Secret has.
    for (const e of env.values()) {
      const ref = e.valueFrom?.secretKeyRef as { name: string; key: string } | undefined;
      if (!ref) continue;
      const secret = one(objects, 'Secret', ref.name);
      expect(Object.keys({ ...secret.stringData, ...secret.data }), `Secret ${ref.name}`).toContain(ref.key);
    }
    // The replica id is the pod's name, from the downward API.
    expect(sluiceYaml).toMatch(/^replicaId: \$\{POD_NAME\}$/m);
    expect(env.get('POD_NAME')?.valueFrom?.fieldRef?.fieldPath).toBe('metadata.name');
    const loaded = loadedConfig();
    expect(loaded.config.store).toBe('postgres://sluice:placeholder-sluice_store_password@sluice-store.databases.svc:5432/sluice');
    expect(loaded.config.replicaId).toBe(podName);
    expect(loaded.config.admin).toBeDefined();
    // A missing variable is refused, so a Deployment that forgets one does not start.
    const { SLUICE_STORE_PASSWORD: _omitted, ...missing } = filled;
    expect(() => parseConfig(sluiceYaml, '/etc/sluice/sluice.yaml', dialects, missing)).toThrow(/SLUICE_STORE_PASSWORD is not set/);
  });

  it('two replicas; container ports match the listen and admin ports of sluice.yaml', () => {
    const loaded = loadedConfig();
    expect(deployment.spec.replicas).toBe(2);
    const ports = new Map<string, number>((container.ports as Json[]).map((p) => [p.name as string, p.containerPort as number]));
    expect(Object.values(loaded.config.listen).filter(Boolean).length, 'sluice.yaml has listeners to check').toBeGreaterThan(0);
    for (const [dialect, address] of Object.entries(loaded.config.listen)) {
      if (!address) continue;
      expect(ports.get(dialect), `container port named ${dialect}`).toBe(splitHostPort(address).port);
      // Listening on loopback inside a pod would be unreachable.
      expect(splitHostPort(address).host, `listen.${dialect}`).toBe('0.0.0.0');
    }
    expect(ports.get('admin')).toBe(splitHostPort(loaded.config.admin!).port);
    expect(splitHostPort(loaded.config.admin!).host).toBe('0.0.0.0');
  });

  it('selectors: the Deployment, both Services and the PodDisruptionBudget select the pod labels', () => {
    const labels = deployment.spec.template.metadata.labels as Record<string, string>;
    expect(matches(deployment.spec.selector.matchLabels, labels)).toBe(true);
    for (const svc of objects.filter((o) => o.object.kind === 'Service').map((o) => o.object as Json)) {
      expect(Object.keys(svc.spec.selector).length, `Service ${svc.metadata.name}`).toBeGreaterThan(0);
      expect(matches(svc.spec.selector, labels), `Service ${svc.metadata.name} selects the pods`).toBe(true);
    }
    const pdb = one(objects, 'PodDisruptionBudget');
    expect(matches(pdb.spec.selector.matchLabels, labels)).toBe(true);
    expect(pdb.spec.minAvailable).toBeLessThan(deployment.spec.replicas);
  });

  it('the database Service is a TCP LoadBalancer onto the listeners; the admin port is a separate ClusterIP Service', () => {
    const loaded = loadedConfig();
    const containerPorts = new Set((container.ports as Json[]).map((p) => p.name as string));
    const lb = one(objects, 'Service', 'sluice');
    expect(lb.spec.type).toBe('LoadBalancer');
    const lbTargets = (lb.spec.ports as Json[]).map((p) => p.targetPort as string);
    expect(lbTargets.sort()).toEqual(Object.keys(loaded.config.listen).filter((d) => loaded.config.listen[d as 'postgres']).sort());
    for (const p of lb.spec.ports as Json[]) {
      expect(p.protocol).toBe('TCP');
      expect(containerPorts.has(p.targetPort)).toBe(true);
    }
    expect(lbTargets).not.toContain('admin');
    const admin = one(objects, 'Service', 'sluice-admin');
    expect(admin.spec.type).toBe('ClusterIP');
    expect((admin.spec.ports as Json[]).map((p) => p.targetPort)).toEqual(['admin']);
  });

  it('shutdown: terminationGracePeriodSeconds covers the preStop pause, limits.shutdownGraceMs and the final flush', () => {
    const loaded = loadedConfig();
    const preStop = container.lifecycle?.preStop?.exec?.command as string[] | undefined;
    const pause = preStop?.[0] === 'sleep' ? Number(preStop[1]) : 0;
    expect(podSpec.terminationGracePeriodSeconds).toBeGreaterThan(pause + loaded.config.limits.shutdownGraceMs / 1000 + FLUSH_BOUND_S);
  });

  it('runs as non-root with a read-only root filesystem; everything the gateway writes is on a writable volume', () => {
    const loaded = loadedConfig();
    expect(podSpec.securityContext.runAsNonRoot).toBe(true);
    expect(podSpec.securityContext.runAsUser).toBeGreaterThan(0);
    expect(container.securityContext.readOnlyRootFilesystem).toBe(true);
    expect(container.securityContext.allowPrivilegeEscalation).toBe(false);
    expect(container.securityContext.capabilities.drop).toContain('ALL');
    const volumes = new Map<string, Json>((podSpec.volumes as Json[]).map((v) => [v.name as string, v]));
    const mounts = container.volumeMounts as Json[];
    const writable = mounts.filter((m) => !m.readOnly && volumes.get(m.name)?.emptyDir !== undefined).map((m) => m.mountPath as string);
    const under = (path: string, dirs: readonly string[]) => dirs.some((d) => path === d || path.startsWith(`${d}/`));
    for (const [key, path] of [
      ['pidFile', loaded.config.pidFile],
      ['audit.dir', loaded.config.audit.dir],
      ['approvals.dir', loaded.config.approvals.dir],
    ] as const) {
      expect(under(path, writable), `${key} (${path}) is on a writable volume (${writable.join(', ')})`).toBe(true);
    }
    // The config and the TLS files are where the volumes put them.
    const mountOf = (name: string) => mounts.find((m) => volumes.get(m.name)?.[name] !== undefined)?.mountPath as string;
    expect(posix.dirname(loaded.file)).toBe(mountOf('configMap'));
    expect(posix.dirname(loaded.config.tls!.certFile)).toBe(mountOf('secret'));
    expect(posix.dirname(loaded.config.tls!.keyFile)).toBe(mountOf('secret'));
    const tlsSecret = one(objects, 'Secret', (podSpec.volumes as Json[]).find((v) => v.secret)!.secret.secretName);
    expect(Object.keys(tlsSecret.stringData)).toEqual(expect.arrayContaining([posix.basename(loaded.config.tls!.certFile), posix.basename(loaded.config.tls!.keyFile)]));
  });

  it('the example Secret holds placeholders only', () => {
    const secrets = objects.filter((o) => o.object.kind === 'Secret');
    expect(secrets.length, 'the example has Secrets to check').toBeGreaterThan(0);
    let values = 0;
    for (const { object } of secrets) {
      for (const [k, v] of Object.entries((object as Json).stringData ?? {})) {
        expect(String(v), `${object.metadata.name}.${k}`).toMatch(/^REPLACE-ME/);
        values++;
      }
      expect((object as Json).data, 'no base64 data in the example').toBeUndefined();
    }
    expect(values, 'the example Secrets hold values to check').toBeGreaterThan(0);
  });

  describe('probe and scrape paths are routes the admin listener serves', () => {
    let dir: string;
    let gateway: RunningGateway | undefined;
    beforeAll(async () => {
      // A gateway with the ConfigMap's admin settings, on loopback and free ports, nothing shared.
      dir = mkdtempSync(join(tmpdir(), 'sluice-deploy-'));
      const file = join(dir, 'sluice.yaml');
      writeFileSync(
        file,
        `listen:
  postgres: 127.0.0.1:0
targets:
  - name: app
    dialect: postgres
    upstream: postgres://postgres@127.0.0.1:5432/test
identities:
  tokens: []
lineage:
  enabled: false
telemetry:
  enabled: false
  prometheus: ${String(loadedConfig().config.telemetry.prometheus)}
admin: 127.0.0.1:0
`,
      );
      gateway = await startGateway(parseConfig(readFileSync(file, 'utf8'), file, dialects, {}), pino({ level: 'silent' }));
    });
    afterAll(async () => {
      await gateway?.close();
      if (dir) rmSync(dir, { recursive: true, force: true });
    });

    it('startup, liveness and readiness probes, and the Prometheus annotation, answer 200 without credentials', async () => {
    const loaded = loadedConfig();
      const paths = new Set<string>();
      for (const p of ['startupProbe', 'livenessProbe', 'readinessProbe']) {
        const probe = container[p] as Json;
        expect(probe?.httpGet?.port, `${p} port`).toBe('admin');
        paths.add(probe.httpGet.path as string);
      }
      const annotations = deployment.spec.template.metadata.annotations as Record<string, string>;
      expect(Number(annotations['prometheus.io/port'])).toBe(splitHostPort(loaded.config.admin!).port);
      paths.add(annotations['prometheus.io/path']!);
      expect([...paths].sort()).toEqual(['/healthz', '/metrics', '/readyz']);
      for (const path of paths) {
        const r = await fetch(`${gateway!.adminUrl}${path}`);
        expect(r.status, path).toBe(200);
      }
      // And a path that is not served is not mistaken for one.
      expect((await fetch(`${gateway!.adminUrl}/livez`)).status).toBe(404);
    });
  });
});

describe('docs/deploy/Dockerfile', () => {
  const text = readFileSync(join(DEPLOY, 'Dockerfile'), 'utf8');
  const instructions = parseDockerfile(text);
  const lastStage = Math.max(...instructions.map((i) => i.stage));
  const final = instructions.filter((i) => i.stage === lastStage);
  const configMapYaml = (loadManifests().find((o) => o.object.kind === 'ConfigMap')!.object as Json).data['sluice.yaml'] as string;

  it('every base image is pinned to a major version (no latest, no untagged image)', () => {
    const stages = new Set<string>();
    for (const from of instructions.filter((i) => i.keyword === 'FROM')) {
      const [image, as, name] = from.args.split(/\s+/);
      if (stages.has(image!)) continue; // an earlier stage
      expect(image, from.args).toMatch(/^[a-z0-9./-]+:\d+(\.\d+)*(-[a-z0-9.-]+)?$/);
      expect(image).not.toMatch(/:latest$/);
      if (as?.toUpperCase() === 'AS' && name) stages.add(name);
    }
    expect(instructions.filter((i) => i.keyword === 'FROM').map((i) => i.args.split(/\s+/)[0])).toEqual(['node:20-bookworm-slim', 'node:20-bookworm-slim']);
  });

  it('the image runs as a non-root user, given by number', () => {
    const users = final.filter((i) => i.keyword === 'USER');
    expect(users.length).toBeGreaterThan(0);
    const user = users.at(-1)!.args;
    expect(user).toMatch(/^[1-9]\d*(:\d+)?$/);
    // The manifests run as the same user.
    const deployment = loadManifests().find((o) => o.object.kind === 'Deployment')!.object as Json;
    expect(String(deployment.spec.template.spec.securityContext.runAsUser)).toBe(user.split(':')[0]);
  });

  it('no secrets in ENV or ARG', () => {
    for (const i of instructions.filter((x) => x.keyword === 'ENV' || x.keyword === 'ARG')) {
      for (const m of i.args.matchAll(/([A-Za-z_][A-Za-z0-9_]*)=("[^"]*"|\S*)/g)) {
        expect(m[1], `${i.keyword} ${m[1]}`).not.toMatch(/PASS|SECRET|TOKEN|KEY|CREDENTIAL/i);
      }
    }
    expect(text).not.toMatch(/postgres(ql)?:\/\/[^@\s]*:[^@\s]*@/);
  });

  it('installs pnpm as .ci/run does, with a frozen lockfile, after copying every workspace manifest', () => {
    const runs = instructions.filter((i) => i.keyword === 'RUN').map((i) => i.args);
    expect(runs.some((r) => r.includes('npm install -g') && r.includes('packageManager'))).toBe(true);
    const ci = readFileSync(join(ROOT, '.ci/run'), 'utf8');
    expect(ci).toMatch(/npm install -g "pnpm@\$\{PNPM_VERSION\}"/);
    const installAt = instructions.findIndex((i) => i.keyword === 'RUN' && /pnpm install --frozen-lockfile/.test(i.args));
    expect(installAt).toBeGreaterThan(0);
    const copiedBefore = instructions
      .slice(0, installAt)
      .filter((i) => i.keyword === 'COPY')
      .flatMap((i) => i.args.split(/\s+/).slice(0, -1));
    const manifests = ['apps', 'packages'].flatMap((d) =>
      readdirSync(join(ROOT, d))
        .filter((p) => existsSync(join(ROOT, d, p, 'package.json')))
        .map((p) => `${d}/${p}/package.json`),
    );
    expect(manifests.length).toBeGreaterThan(3);
    for (const m of manifests) expect(copiedBefore, `${m} is copied before pnpm install`).toContain(m);
    for (const f of ['pnpm-lock.yaml', 'pnpm-workspace.yaml', 'package.json']) expect(copiedBefore).toContain(f);
  });

  it('every COPY source exists in the repository and is not excluded from the build context', () => {
    const ignore = readFileSync(join(DEPLOY, 'Dockerfile.dockerignore'), 'utf8')
      .split('\n')
      .map((l) => l.trim())
      .filter((l) => l !== '' && !l.startsWith('#'));
    const excluded = (path: string) =>
      ignore.some((pattern) => {
        const p = pattern.replace(/^\*\*\//, '');
        return path === p || path.startsWith(`${p}/`) || path.split('/').includes(p) || (p.startsWith('*.') && path.endsWith(p.slice(1)));
      });
    const copies = instructions.filter((i) => i.keyword === 'COPY' && !/--from=/.test(i.args));
    expect(copies.length).toBeGreaterThan(3);
    for (const c of copies) {
      const parts = c.args.split(/\s+/).filter((p) => !p.startsWith('--'));
      for (const source of parts.slice(0, -1)) {
        expect(existsSync(join(ROOT, source)), `COPY ${source}: no such file in the repository`).toBe(true);
        expect(excluded(source), `COPY ${source} is excluded by Dockerfile.dockerignore`).toBe(false);
      }
    }
    // What must stay out of the context is out.
    for (const p of ['node_modules', 'apps/gateway/dist', '.git', 'apps/gateway/.sluice']) expect(excluded(p), p).toBe(true);
  });

  it('the entry point is the gateway CLI in the production tree, and the build output has it', () => {
    const entry = execForm(final.find((i) => i.keyword === 'ENTRYPOINT')!.args);
    expect(entry[0]).toBe('node');
    // `pnpm --filter @sluice/gateway deploy ... /opt/sluice` puts apps/gateway's files at /opt/sluice.
    const deploy = instructions.find((i) => i.keyword === 'RUN' && /deploy/.test(i.args))!;
    const m = /--filter\s+(\S+)\s+deploy\b.*\s(\/\S+)$/.exec(deploy.args);
    expect(m, deploy.args).not.toBeNull();
    const gatewayPackage = JSON.parse(readFileSync(join(ROOT, 'apps/gateway/package.json'), 'utf8')) as { name: string; bin: Record<string, string> };
    expect(m![1]).toBe(gatewayPackage.name);
    const inPackage = posix.relative(m![2]!, entry[1]!);
    expect(`./${inPackage}`).toBe(gatewayPackage.bin.sluice);
    expect(existsSync(join(ROOT, 'apps/gateway', inPackage)), `apps/gateway/${inPackage} (run the build first)`).toBe(true);
    expect(existsSync(join(ROOT, 'apps/gateway/src/cli.ts'))).toBe(true);
    const cmd = execForm(final.find((i) => i.keyword === 'CMD')!.args);
    expect(cmd).toEqual(['start', '--config', '/etc/sluice/sluice.yaml']);
    // The Deployment passes the same arguments.
    const deployment = loadManifests().find((o) => o.object.kind === 'Deployment')!.object as Json;
    expect(deployment.spec.template.spec.containers[0].args).toEqual(cmd);
  });

  it('EXPOSE names the listener and admin ports of the example config; the HEALTHCHECK asks /healthz on the admin port', () => {
    const exposed = final.filter((i) => i.keyword === 'EXPOSE').flatMap((i) => i.args.split(/\s+/).map((p) => Number(p.replace(/\/tcp$/, ''))));
    const example = parseConfig(configMapYaml, '/etc/sluice/sluice.yaml', dialects, Object.fromEntries(envNames(configMapYaml).map((n) => [n, `placeholder-${n.toLowerCase()}`])));
    const admin = splitHostPort(example.config.admin!).port;
    for (const address of Object.values(example.config.listen)) if (address) expect(exposed).toContain(splitHostPort(address).port);
    expect(exposed).toContain(admin);
    const healthcheck = final.find((i) => i.keyword === 'HEALTHCHECK');
    expect(healthcheck).toBeDefined();
    const env = final.filter((i) => i.keyword === 'ENV').map((i) => i.args).join(' ');
    const url = new URL(/SLUICE_HEALTHCHECK_URL=(\S+)/.exec(env)![1]!);
    expect(healthcheck!.args).toContain('SLUICE_HEALTHCHECK_URL');
    expect(url.pathname).toBe('/healthz');
    expect(Number(url.port)).toBe(admin);
    expect(['127.0.0.1', 'localhost']).toContain(url.hostname);
  });
});
