/** How Fastify's and the engine's failures become the ServerError a client reads. */
import { ContextOverflowError } from '@ie/runtime';
import { describe, expect, it } from 'vitest';
import { ServerError } from './errors.js';
import { paramOf, toServerError } from './replies.js';

const fields = (e: ServerError) => [e.code, e.status, e.param, e.message];

describe('toServerError', () => {
  it('names the field of a validation failure as a JSON path', () => {
    expect(paramOf('/messages/0/content')).toBe('messages[0].content');
    expect(paramOf('', 'prompt')).toBe('prompt');
    expect(paramOf('/stream_options', 'include_usage')).toBe('stream_options.include_usage');
    expect(paramOf('')).toBeNull();
    const invalid = Object.assign(new Error('body/temperature must be <= 2'), {
      validation: [{ keyword: 'maximum', instancePath: '/temperature', params: {}, message: 'must be <= 2' }],
    });
    expect(fields(toServerError(invalid))).toEqual(['IE_SERVER_BAD_REQUEST', 400, 'temperature', 'temperature must be <= 2']);
    const missing = Object.assign(new Error('x'), {
      validation: [{ keyword: 'required', instancePath: '/messages/1', params: { missingProperty: 'role' }, message: 'x' }],
    });
    expect(fields(toServerError(missing))).toEqual(['IE_SERVER_BAD_REQUEST', 400, 'messages[1].role', 'messages[1].role is required']);
    const whole = Object.assign(new Error('x'), {
      validation: [{ keyword: 'type', instancePath: '', params: {}, message: 'must be object' }],
    });
    expect(fields(toServerError(whole))).toEqual(['IE_SERVER_BAD_REQUEST', 400, null, 'the body must be object']);
  });

  it("maps Fastify's body-parser codes, a SyntaxError and engine errors to their codes", () => {
    const fst = (code: string, message = 'm') => Object.assign(new Error(message), { code });
    expect(fields(toServerError(fst('FST_ERR_CTP_BODY_TOO_LARGE', 'too big')))).toEqual(['IE_SERVER_BODY_TOO_LARGE', 413, null, 'too big']);
    expect(fields(toServerError(fst('FST_ERR_CTP_EMPTY_JSON_BODY', 'empty')))).toEqual([
      'IE_SERVER_INVALID_JSON',
      400,
      null,
      'the body is not valid JSON: empty',
    ]);
    expect(fields(toServerError(fst('FST_ERR_CTP_INVALID_MEDIA_TYPE')))).toEqual([
      'IE_SERVER_UNSUPPORTED_MEDIA',
      415,
      null,
      'send the body as application/json',
    ]);
    expect(fields(toServerError(fst('FST_ERR_CTP_INVALID_CONTENT_LENGTH', 'length')))).toEqual([
      'IE_SERVER_BAD_REQUEST',
      400,
      null,
      'length',
    ]);
    expect(fields(toServerError(new SyntaxError('Unexpected end')))).toEqual([
      'IE_SERVER_INVALID_JSON',
      400,
      null,
      'the body is not valid JSON: Unexpected end',
    ]);
    const overflow = toServerError(new ContextOverflowError('600 tokens; the context holds 512', 600, 512));
    expect(fields(overflow)).toEqual(['IE_SERVER_CONTEXT_LENGTH', 400, 'messages', '600 tokens; the context holds 512']);
    const same = new ServerError('IE_SERVER_QUEUE_FULL', 'full', null, 1);
    expect(toServerError(same)).toBe(same);
    expect(fields(toServerError('boom'))).toEqual(['IE_SERVER_INTERNAL', 500, null, 'boom']);
    // A client that left while its body was arriving: a 400 nobody reads, not an internal error to log.
    const left = 'the client closed the connection before the body was complete';
    expect(fields(toServerError(Object.assign(new Error('aborted'), { code: 'ECONNRESET' })))).toEqual([
      'IE_SERVER_BAD_REQUEST',
      400,
      null,
      left,
    ]);
    expect(fields(toServerError(new Error('aborted')))).toEqual(['IE_SERVER_BAD_REQUEST', 400, null, left]);
  });
});
