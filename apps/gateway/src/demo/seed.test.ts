import { describe, expect, it } from 'vitest';
import { DEMO_ROW_COUNTS, DEMO_TABLES, TEST_CARD_NUMBERS, demoData, demoSeedSql, isLuhnValid } from './seed.js';

describe('demo seed', () => {
  it('is deterministic', () => {
    expect(demoSeedSql()).toBe(demoSeedSql());
    expect(demoData()).toEqual(demoData());
  });

  it('creates every demo table and inserts the advertised number of rows', () => {
    const sql = demoSeedSql();
    for (const table of DEMO_TABLES) expect(sql).toContain(`CREATE TABLE public.${table} (`);
    const data = demoData();
    expect(data.customers).toHaveLength(DEMO_ROW_COUNTS.customers);
    expect(data.products).toHaveLength(DEMO_ROW_COUNTS.products);
    expect(data.orders).toHaveLength(DEMO_ROW_COUNTS.orders);
    expect(data.apiKeys).toHaveLength(DEMO_ROW_COUNTS.api_keys);
  });

  it('uses only reserved email domains, unique addresses and E.164 phone numbers', () => {
    const { customers } = demoData();
    const emails = customers.map((c) => c.email);
    expect(new Set(emails).size).toBe(emails.length);
    for (const email of emails) expect(email).toMatch(/^[a-z0-9._]+@example\.(com|org|net)$/);
    const phones = customers.flatMap((c) => (c.phone === null ? [] : [c.phone]));
    expect(phones.length).toBeGreaterThan(30);
    for (const phone of phones) expect(phone).toMatch(/^\+[1-9]\d{7,14}$/);
    expect(phones.some((p) => p.startsWith('+1') && p.slice(5, 10) === '55501')).toBe(true);
    expect(phones.some((p) => !p.startsWith('+1'))).toBe(true);
  });

  it('uses Luhn-valid test card numbers only', () => {
    for (const pan of TEST_CARD_NUMBERS) expect(isLuhnValid(pan), pan).toBe(true);
    const cards = demoData().customers.flatMap((c) => (c.cardNumber === null ? [] : [c.cardNumber]));
    expect(cards.length).toBeGreaterThan(30);
    for (const card of cards) {
      expect(isLuhnValid(card), card).toBe(true);
      expect(TEST_CARD_NUMBERS).toContain(card.replace(/[\s-]/g, ''));
    }
    expect(isLuhnValid('4242 4242 4242 4241')).toBe(false);
  });

  it('gives API keys the shape of real credentials', () => {
    const keys = demoData().apiKeys.map((k) => k.key);
    expect(new Set(keys).size).toBe(keys.length);
    for (const key of keys) expect(key).toMatch(/^(sk_(live|test)_[A-Za-z0-9]{24}|ghp_[A-Za-z0-9]{36}|AKIA[A-Z2-7]{16})$/);
  });

  it('keeps orders consistent with customers and products', () => {
    const data = demoData();
    for (const order of data.orders) {
      const customer = data.customers[order.customerId - 1];
      const product = data.products[order.productId - 1];
      expect(customer).toBeDefined();
      expect(product).toBeDefined();
      expect(order.amountCents).toBe((product?.[2] ?? 0) * order.quantity);
      expect(order.createdAt.getTime()).toBeGreaterThanOrEqual(customer?.createdAt.getTime() ?? 0);
    }
  });

  it('quotes values containing apostrophes', () => {
    const sql = demoSeedSql();
    expect(demoData().customers.some((c) => c.fullName.includes("O'Brien"))).toBe(true);
    expect(sql).toContain("O''Brien");
    expect(sql).not.toMatch(/[^']'Brien/);
  });
});
