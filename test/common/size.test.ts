import { describe, expect, it } from 'vitest';
import { parseSize, sizeProblem, sizeSchema } from '../../common/size.js';

describe('sizes (common/size)', () => {
  it('reads b, kb, mb (binary units, any case) and plain bytes', () => {
    expect(parseSize('0')).toBe(0);
    expect(parseSize('512')).toBe(512);
    expect(parseSize('512b')).toBe(512);
    expect(parseSize('64kb')).toBe(65_536);
    expect(parseSize('10mb')).toBe(10_485_760);
    expect(parseSize('10MB')).toBe(10_485_760);
    expect(parseSize(' 1.5 kb ')).toBe(1536);
    expect(parseSize('0.5b')).toBe(0);
  });

  it('refuses anything else', () => {
    for (const text of [
      '',
      'ten',
      '-1',
      '1gb',
      '1k',
      '1 m',
      'kb',
      '1e3',
      '1,000',
      '9'.repeat(400),
    ]) {
      expect(parseSize(text), text).toBeUndefined();
    }
  });

  it('says what is wrong, and the zod field yields bytes', () => {
    expect(sizeProblem('10mb')).toBeUndefined();
    expect(sizeProblem('huge')).toBe('"huge" is not a size (use 512kb, 10mb or plain bytes)');
    const field = sizeSchema('10mb');
    expect(field.parse(undefined)).toBe(10_485_760);
    expect(field.safeParse('1tb').error?.issues.map((i) => i.message)).toEqual([
      '"1tb" is not a size (use 512kb, 10mb or plain bytes)',
    ]);
  });
});
