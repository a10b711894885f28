import type { FastifyRequest } from 'fastify';
import { isSlot, type Slot } from '../../common/slot.js';
import { ADMIN_ERRORS } from './errors.js';

/** A parameter as given: a query string value (text) or a JSON body field (any JSON value). */
export interface Param {
  value: unknown;
  from: 'query' | 'body';
}
export type Params = Partial<Record<string, Param>>;

/**
 * Merges query parameters and JSON body fields, refusing names the route does
 * not know, names given twice, and bodies that are not JSON objects.
 */
export function readParams(request: FastifyRequest, allowed: readonly string[]): Params {
  const params: Params = {};
  const unknown: string[] = [];
  const query = (request.query ?? {}) as Record<string, unknown>;
  for (const [name, value] of Object.entries(query)) {
    if (!allowed.includes(name)) unknown.push(name);
    else if (Array.isArray(value)) throw ADMIN_ERRORS.parameterRepeated.create(name);
    else params[name] = { value, from: 'query' };
  }
  const body: unknown = request.body;
  if (body !== undefined) {
    if (typeof body !== 'object' || body === null || Array.isArray(body)) {
      throw ADMIN_ERRORS.bodyNotObject.create();
    }
    for (const [name, value] of Object.entries(body)) {
      if (!allowed.includes(name)) unknown.push(name);
      else if (params[name] !== undefined) throw ADMIN_ERRORS.parameterTwice.create(name);
      else params[name] = { value, from: 'body' };
    }
  }
  if (unknown.length > 0) throw ADMIN_ERRORS.unknownParameters.create(unknown, allowed);
  return params;
}

export function slotParam(param: Param | undefined): Slot {
  if (param === undefined) throw ADMIN_ERRORS.slotMissing.create();
  if (!isSlot(param.value)) throw ADMIN_ERRORS.slotInvalid.create(describeValue(param.value));
  return param.value;
}

export function booleanParam(name: string, param: Param): boolean {
  const { value, from } = param;
  if (typeof value === 'boolean' && from === 'body') return value;
  if (from === 'query' && (value === 'true' || value === 'false')) return value === 'true';
  const expected = from === 'body' ? 'a JSON boolean' : 'true or false';
  throw ADMIN_ERRORS.parameterNotBoolean.create(name, expected, describeValue(value));
}

export function integerParam(
  name: string,
  param: Param,
  range: { min: number; max: number },
): number {
  const { value, from } = param;
  let n: number | undefined;
  if (from === 'body' && typeof value === 'number') n = value;
  if (from === 'query' && typeof value === 'string' && /^\d{1,16}$/.test(value)) n = Number(value);
  if (n === undefined || !Number.isSafeInteger(n) || n < range.min || n > range.max) {
    const bound =
      range.max === Number.MAX_SAFE_INTEGER ? `>= ${range.min}` : `${range.min}..${range.max}`;
    throw ADMIN_ERRORS.parameterNotInteger.create(name, bound, describeValue(value));
  }
  return n;
}

/** A value as an error message quotes it: JSON, at most 64 characters. */
export function describeValue(value: unknown): string {
  const text = JSON.stringify(value) ?? String(value);
  return text.length > 64 ? `${text.slice(0, 61)}...` : text;
}
