import { describe, expect, it } from 'vitest';
import { glob } from './glob.js';

describe('glob', () => {
  it('matches whole names, ignoring case, * standing for any run of characters', () => {
    expect(glob('prod')('PROD')).toBe(true);
    expect(glob('prod')('prod-eu')).toBe(false);
    expect(glob('prod-*')('prod-eu')).toBe(true);
    expect(glob('prod-*')('prod-')).toBe(true);
    expect(glob('*-eu')('staging-EU')).toBe(true);
    expect(glob('a*b*c')('aXXbYYc')).toBe(true);
    expect(glob('a*b*c')('acb')).toBe(false);
    expect(glob('*')('')).toBe(true);
  });

  it('takes other characters literally and lets * match line breaks', () => {
    expect(glob('a.b')('aXb')).toBe(false);
    expect(glob('a?b')('a?b')).toBe(true);
    expect(glob('a*b')('a\nb')).toBe(true);
  });

  it('does not let pieces overlap', () => {
    expect(glob('ab*ba')('aba')).toBe(false);
    expect(glob('ab*ba')('abba')).toBe(true);
  });
});
