/**
 * The demo schema and its data: a small shop whose tables hold the kinds of personal data a
 * gateway is expected to protect (names, emails, phone numbers, card numbers, API keys).
 *
 * Every value is fake and generated from a fixed PRNG seed, so the same SQL comes out on every
 * run. Emails use the reserved example.com/.org/.net domains, phone numbers come from ranges
 * set aside for fiction (North American 555-01xx, UK Ofcom drama ranges, ACMA and ARCEP
 * fiction ranges), card numbers are the public test PANs of card networks and payment
 * processors (all Luhn-valid, none issued to a person), and API keys only have the shape of
 * real ones.
 */

/** Tables created by {@link demoSeedSql}, in creation order. */
export const DEMO_TABLES = ['customers', 'products', 'orders', 'api_keys'] as const;

export const DEMO_SCHEMA = 'public';

export const DEMO_ROW_COUNTS = { customers: 50, products: 12, orders: 200, api_keys: 40 } as const;

/** Returns one row, `present`, the number of demo tables that already exist. */
export const DEMO_SEED_CHECK_SQL = `SELECT count(*)::int AS present FROM pg_catalog.pg_tables WHERE schemaname = '${DEMO_SCHEMA}' AND tablename IN (${DEMO_TABLES.map((t) => `'${t}'`).join(', ')})`;

const SEED = 0x5eed_2024;

/** Start of the invented history: customers sign up during 2024, orders follow. */
const EPOCH_MS = Date.UTC(2024, 0, 1);
const DAY_MS = 86_400_000;

/** Test card numbers published by networks and processors for integration testing. */
export const TEST_CARD_NUMBERS: readonly string[] = [
  '4242424242424242',
  '4000056655665556',
  '5555555555554444',
  '2223003122003222',
  '5200828282828210',
  '5105105105105100',
  '378282246310005',
  '371449635398431',
  '6011111111111117',
  '6011000990139424',
  '3056930009020004',
  '36227206271667',
  '3566002020360505',
  '6200000000000005',
  '4111111111111111',
  '4012888888881881',
  '4000002500003155',
  '4000000000003220',
];

const FIRST_NAMES = [
  'Olivia', 'Liam', 'Amara', 'Noah', 'Sofia', 'Mateo', 'Aisha', 'Lucas', 'Mei', 'Ethan',
  'Zara', 'Kenji', 'Chloe', 'Diego', 'Priya', 'Oscar', 'Fatima', 'Hugo', 'Ingrid', 'Tariq',
  'Elena', 'Jonas', 'Nia', 'Rafael', 'Hana', 'Samuel', 'Leila', 'Finn', 'Yara', 'Emil',
  'Sinéad', 'José', 'Chiara', 'Arjun', 'Maeve', 'Kofi', 'Ana', 'Björn', 'Lucía', 'Tomás',
];

const LAST_NAMES = [
  'Garcia', 'Okafor', 'Nguyen', 'Schmidt', 'Rossi', 'Tanaka', 'Kowalski', 'Haddad', 'Silva', 'Johansson',
  'Martin', 'Patel', "O'Brien", 'Dubois', 'Kim', 'Moreno', 'Andersen', 'Mensah', 'Novak', 'Fischer',
  'Costa', 'Yilmaz', 'Murphy', 'Ivanova', 'Reyes', 'Lindqvist', 'Bianchi', 'Sato', 'Walsh', 'Herrera',
];

const EMAIL_DOMAINS = ['example.com', 'example.org', 'example.net'];

/** North American area codes; the 555-0100..0199 lines under any of them are reserved for fiction. */
const NANP_AREA_CODES = ['202', '212', '305', '312', '415', '512', '617', '206', '303', '604'];

const PRODUCTS: ReadonlyArray<readonly [sku: string, name: string, priceCents: number]> = [
  ['TEE-ORG-M', 'Organic cotton tee', 2400],
  ['HOOD-GRY-L', 'Heather grey hoodie', 5900],
  ['MUG-ENM-12', 'Enamel camp mug', 1800],
  ['BTL-STL-750', 'Steel water bottle 750 ml', 2900],
  ['CAP-NVY', 'Navy six-panel cap', 2200],
  ['SOCK-WL-3P', 'Merino socks, 3 pack', 2700],
  ['BAG-CNV-TOT', 'Canvas tote bag', 1900],
  ['NB-DOT-A5', 'Dotted notebook A5', 1400],
  ['PEN-BRS', 'Brass pen', 4500],
  ['STK-PACK', 'Sticker pack', 600],
  ['JKT-RAIN-M', 'Packable rain jacket', 11900],
  ['BNE-RIB', 'Ribbed beanie', 2600],
];

const ORDER_STATUSES: ReadonlyArray<readonly [status: string, weight: number]> = [
  ['delivered', 46],
  ['shipped', 18],
  ['paid', 14],
  ['pending', 10],
  ['refunded', 6],
  ['cancelled', 6],
];

const API_KEY_LABELS = ['production', 'staging', 'ci', 'billing sync', 'analytics export', 'mobile app', 'webhooks'];

const BASE62 = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789';
const UPPER_ALNUM = 'ABCDEFGHIJKLMNOPQRSTUVWXYZ234567';

/** True when the digits in `value` (spaces and dashes ignored) pass the Luhn check. */
export function isLuhnValid(value: string): boolean {
  const digits = value.replace(/[\s-]/g, '');
  if (!/^\d{12,19}$/.test(digits)) return false;
  let sum = 0;
  for (let i = 0; i < digits.length; i++) {
    let d = digits.charCodeAt(digits.length - 1 - i) - 48;
    if (i % 2 === 1) {
      d *= 2;
      if (d > 9) d -= 9;
    }
    sum += d;
  }
  return sum % 10 === 0;
}

/** mulberry32: small, fast and good enough to make varied but repeatable demo data. */
function prng(seed: number): () => number {
  let state = seed >>> 0;
  return () => {
    state = (state + 0x6d2b79f5) >>> 0;
    let t = state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4_294_967_296;
  };
}

class Random {
  private readonly next: () => number;
  constructor(seed: number) {
    this.next = prng(seed);
  }
  /** Integer in [min, max]. */
  int(min: number, max: number): number {
    return min + Math.floor(this.next() * (max - min + 1));
  }
  chance(p: number): boolean {
    return this.next() < p;
  }
  pick<T>(items: readonly T[]): T {
    const item = items[this.int(0, items.length - 1)];
    if (item === undefined) throw new Error('pick from an empty list');
    return item;
  }
  weighted<T>(items: ReadonlyArray<readonly [T, number]>): T {
    const total = items.reduce((sum, [, w]) => sum + w, 0);
    let roll = this.next() * total;
    for (const [item, w] of items) {
      roll -= w;
      if (roll < 0) return item;
    }
    const last = items[items.length - 1];
    if (last === undefined) throw new Error('weighted pick from an empty list');
    return last[0];
  }
  chars(alphabet: string, length: number): string {
    let out = '';
    for (let i = 0; i < length; i++) out += alphabet[this.int(0, alphabet.length - 1)];
    return out;
  }
}

export interface DemoCustomer {
  readonly fullName: string;
  readonly email: string;
  readonly phone: string | null;
  readonly cardNumber: string | null;
  readonly createdAt: Date;
}

export interface DemoOrder {
  readonly customerId: number;
  readonly productId: number;
  readonly quantity: number;
  readonly amountCents: number;
  readonly status: string;
  readonly createdAt: Date;
}

export interface DemoApiKey {
  readonly customerId: number;
  readonly label: string;
  readonly key: string;
  readonly createdAt: Date;
  readonly revokedAt: Date | null;
}

export interface DemoData {
  readonly customers: readonly DemoCustomer[];
  readonly products: typeof PRODUCTS;
  readonly orders: readonly DemoOrder[];
  readonly apiKeys: readonly DemoApiKey[];
}

function asciiLocalPart(s: string): string {
  return s
    .normalize('NFD')
    .replace(/[\u0300-\u036f]/g, '')
    .replace(/[^A-Za-z]/g, '')
    .toLowerCase();
}

function fictionalPhone(rnd: Random): string {
  const roll = rnd.int(1, 100);
  const digits = (n: number) => String(rnd.int(0, 10 ** n - 1)).padStart(n, '0');
  if (roll <= 64) return `+1${rnd.pick(NANP_AREA_CODES)}55501${digits(2)}`;
  if (roll <= 76) return `+442079460${digits(3)}`;
  if (roll <= 86) return `+447700900${digits(3)}`;
  if (roll <= 93) return `+3363998${digits(4)}`;
  return `+61491570${rnd.pick(['006', '156', '157', '158', '159'])}`;
}

function formatCard(rnd: Random, pan: string): string {
  const style = rnd.int(1, 10);
  if (style <= 6) return pan;
  const groups = pan.length === 15 ? [4, 6, 5] : pan.length === 14 ? [4, 6, 4] : [4, 4, 4, 4];
  const parts: string[] = [];
  let at = 0;
  for (const g of groups) {
    parts.push(pan.slice(at, at + g));
    at += g;
  }
  return parts.join(style <= 9 ? ' ' : '-');
}

function fakeApiKey(rnd: Random): string {
  const kind = rnd.int(1, 10);
  if (kind <= 4) return `sk_live_${rnd.chars(BASE62, 24)}`;
  if (kind <= 6) return `sk_test_${rnd.chars(BASE62, 24)}`;
  if (kind <= 9) return `ghp_${rnd.chars(BASE62, 36)}`;
  return `AKIA${rnd.chars(UPPER_ALNUM, 16)}`;
}

/** The demo rows, generated deterministically. Customer, product and order ids are 1-based positions. */
export function demoData(): DemoData {
  const rnd = new Random(SEED);
  const usedEmails = new Set<string>();
  const customers: DemoCustomer[] = [];
  for (let i = 0; i < DEMO_ROW_COUNTS.customers; i++) {
    const first = rnd.pick(FIRST_NAMES);
    const last = rnd.pick(LAST_NAMES);
    const domain = rnd.pick(EMAIL_DOMAINS);
    const style = rnd.int(1, 4);
    const base =
      style === 1
        ? `${asciiLocalPart(first)}.${asciiLocalPart(last)}`
        : style === 2
          ? `${asciiLocalPart(first).charAt(0)}${asciiLocalPart(last)}`
          : style === 3
            ? `${asciiLocalPart(first)}${rnd.int(1, 99)}`
            : `${asciiLocalPart(first)}_${asciiLocalPart(last)}`;
    let email = `${base}@${domain}`;
    for (let n = 2; usedEmails.has(email); n++) email = `${base}${n}@${domain}`;
    usedEmails.add(email);
    customers.push({
      fullName: `${first} ${last}`,
      email,
      phone: rnd.chance(0.9) ? fictionalPhone(rnd) : null,
      cardNumber: rnd.chance(0.85) ? formatCard(rnd, rnd.pick(TEST_CARD_NUMBERS)) : null,
      createdAt: new Date(EPOCH_MS + rnd.int(0, 364) * DAY_MS + rnd.int(0, DAY_MS - 1)),
    });
  }

  const orders: DemoOrder[] = [];
  for (let i = 0; i < DEMO_ROW_COUNTS.orders; i++) {
    const customerId = rnd.int(1, customers.length);
    const customer = customers[customerId - 1];
    const productId = rnd.int(1, PRODUCTS.length);
    const product = PRODUCTS[productId - 1];
    if (customer === undefined || product === undefined) throw new Error('demo data index out of range');
    const quantity = rnd.chance(0.75) ? 1 : rnd.int(2, 4);
    const after = customer.createdAt.getTime() + rnd.int(0, 180) * DAY_MS + rnd.int(0, DAY_MS - 1);
    orders.push({
      customerId,
      productId,
      quantity,
      amountCents: product[2] * quantity,
      status: rnd.weighted(ORDER_STATUSES),
      createdAt: new Date(after),
    });
  }
  orders.sort((a, b) => a.createdAt.getTime() - b.createdAt.getTime());

  const apiKeys: DemoApiKey[] = [];
  for (let i = 0; i < DEMO_ROW_COUNTS.api_keys; i++) {
    const customerId = rnd.int(1, customers.length);
    const customer = customers[customerId - 1];
    if (customer === undefined) throw new Error('demo data index out of range');
    const createdAt = new Date(customer.createdAt.getTime() + rnd.int(1, 120) * DAY_MS);
    apiKeys.push({
      customerId,
      label: rnd.pick(API_KEY_LABELS),
      key: fakeApiKey(rnd),
      createdAt,
      revokedAt: rnd.chance(0.2) ? new Date(createdAt.getTime() + rnd.int(5, 90) * DAY_MS) : null,
    });
  }
  apiKeys.sort((a, b) => a.createdAt.getTime() - b.createdAt.getTime());

  return { customers, products: PRODUCTS, orders, apiKeys };
}

function lit(value: string | number | Date | null): string {
  if (value === null) return 'NULL';
  if (typeof value === 'number') return String(value);
  if (value instanceof Date) return `'${value.toISOString()}'`;
  return `'${value.replace(/'/g, "''")}'`;
}

function insert(table: string, columns: readonly string[], rows: ReadonlyArray<ReadonlyArray<string | number | Date | null>>): string {
  const values = rows.map((row) => `  (${row.map(lit).join(', ')})`).join(',\n');
  return `INSERT INTO ${DEMO_SCHEMA}.${table} (${columns.join(', ')}) VALUES\n${values};`;
}

/**
 * The statements that create and fill the demo tables. They expect none of the tables to exist
 * and should run in one transaction; {@link DEMO_SEED_CHECK_SQL} tells whether they already do.
 */
export function demoSeedSql(): string {
  const data = demoData();
  const s = DEMO_SCHEMA;
  return [
    `CREATE TABLE ${s}.customers (
  id serial PRIMARY KEY,
  full_name text NOT NULL,
  email text NOT NULL UNIQUE,
  phone text,
  card_number text,
  created_at timestamptz NOT NULL DEFAULT now()
);`,
    `CREATE TABLE ${s}.products (
  id serial PRIMARY KEY,
  sku text NOT NULL UNIQUE,
  name text NOT NULL,
  price_cents int NOT NULL CHECK (price_cents >= 0)
);`,
    `CREATE TABLE ${s}.orders (
  id serial PRIMARY KEY,
  customer_id int NOT NULL REFERENCES ${s}.customers (id),
  product_id int NOT NULL REFERENCES ${s}.products (id),
  quantity int NOT NULL DEFAULT 1 CHECK (quantity > 0),
  amount_cents int NOT NULL CHECK (amount_cents >= 0),
  status text NOT NULL CHECK (status IN ('pending', 'paid', 'shipped', 'delivered', 'refunded', 'cancelled')),
  created_at timestamptz NOT NULL DEFAULT now()
);`,
    `CREATE INDEX orders_customer_id_idx ON ${s}.orders (customer_id);`,
    `CREATE TABLE ${s}.api_keys (
  id serial PRIMARY KEY,
  customer_id int NOT NULL REFERENCES ${s}.customers (id),
  label text NOT NULL,
  key text NOT NULL UNIQUE,
  created_at timestamptz NOT NULL DEFAULT now(),
  revoked_at timestamptz
);`,
    `COMMENT ON COLUMN ${s}.customers.full_name IS 'PII: person name';`,
    `COMMENT ON COLUMN ${s}.customers.email IS 'PII: email address';`,
    `COMMENT ON COLUMN ${s}.customers.phone IS 'PII: phone number (E.164)';`,
    `COMMENT ON COLUMN ${s}.customers.card_number IS 'PCI: primary account number';`,
    `COMMENT ON COLUMN ${s}.api_keys.key IS 'Secret: API credential';`,
    insert(
      'customers',
      ['full_name', 'email', 'phone', 'card_number', 'created_at'],
      data.customers.map((c) => [c.fullName, c.email, c.phone, c.cardNumber, c.createdAt]),
    ),
    insert(
      'products',
      ['sku', 'name', 'price_cents'],
      data.products.map(([sku, name, price]) => [sku, name, price]),
    ),
    insert(
      'orders',
      ['customer_id', 'product_id', 'quantity', 'amount_cents', 'status', 'created_at'],
      data.orders.map((o) => [o.customerId, o.productId, o.quantity, o.amountCents, o.status, o.createdAt]),
    ),
    insert(
      'api_keys',
      ['customer_id', 'label', 'key', 'created_at', 'revoked_at'],
      data.apiKeys.map((k) => [k.customerId, k.label, k.key, k.createdAt, k.revokedAt]),
    ),
  ].join('\n\n');
}
