/** The engine's errors as a client reads them: the API's field names, and the model's id for its path. */
import { resolve } from 'node:path';
import { IeRuntimeError, InvalidOptionError } from '@ie/runtime';
import { describe, expect, it } from 'vitest';
import { ServerError, fromRuntimeError, withModelId } from './errors.js';

describe('fromRuntimeError', () => {
  it("names an engine option's member by the API's field (logit_bias[5], not logitBias[5]), message and param alike", () => {
    const bias = fromRuntimeError(new InvalidOptionError('logitBias[99999]', 'token id 99999 is outside 0..511'));
    expect([bias.code, bias.status, bias.param, bias.message]).toEqual([
      'IE_SERVER_BAD_REQUEST',
      400,
      'logit_bias',
      'logit_bias[99999]: token id 99999 is outside 0..511',
    ]);
    const choice = fromRuntimeError(new InvalidOptionError('toolChoice.name', '"f" is not one of the tools'));
    expect([choice.param, choice.message]).toEqual(['tool_choice', 'tool_choice.name: "f" is not one of the tools']);
    const top = fromRuntimeError(new InvalidOptionError('topP', 'must be in 0..1'));
    expect([top.param, top.message]).toEqual(['top_p', 'top_p: must be in 0..1']);
    // An option with no request field keeps its name and has no param.
    const other = fromRuntimeError(new InvalidOptionError('threads', 'must be >= 1'));
    expect([other.param, other.message]).toEqual([null, 'threads: must be >= 1']);
  });
});

describe('withModelId', () => {
  const noTemplate = (path: string) =>
    fromRuntimeError(
      new IeRuntimeError('IE_CHAT_NO_TEMPLATE', `${path}: the model has no chat template (model.ie.json has no chat member)`),
    );

  it("replaces the model's path (absolute, relative, with a trailing slash) by its id, keeping code, param and Retry-After", () => {
    const abs = withModelId(noTemplate('/srv/models/tl.gguf'), '/srv/models/tl.gguf', 'tl');
    expect([abs.code, abs.status, abs.param, abs.message]).toEqual([
      'IE_SERVER_CHAT_UNSUPPORTED',
      400,
      'messages',
      'tl: the model has no chat template (model.ie.json has no chat member)',
    ]);
    expect(abs.toJSON().error.code).toBe('chat_unsupported');
    // Loaded by a relative path: the runtime writes it as given, or resolved.
    expect(withModelId(noTemplate('models/tl'), 'models/tl', 'tl').message).toBe(
      'tl: the model has no chat template (model.ie.json has no chat member)',
    );
    expect(withModelId(noTemplate(resolve('models/tl')), 'models/tl/', 'tl').message).toBe(
      'tl: the model has no chat template (model.ie.json has no chat member)',
    );
    // Every occurrence, and a file inside the model's directory keeps only its own name.
    const twice = new ServerError('IE_SERVER_INTERNAL', '/m/x: cannot read /m/x/model.ie.json', null, 3);
    const shown = withModelId(twice, '/m/x', 'x-7b');
    expect([shown.message, shown.retryAfter, shown.status]).toEqual(['x-7b: cannot read x-7b/model.ie.json', 3, 500]);
  });

  it('leaves a message without the path as it is (the same object), and a bare name alone but where it starts the message', () => {
    const plain = new ServerError('IE_SERVER_BAD_REQUEST', 'temperature must be <= 2', 'temperature');
    expect(withModelId(plain, '/srv/models/tl', 'tl')).toBe(plain);
    expect(withModelId(plain, undefined, 'tl')).toBe(plain);
    // Loaded as `m` from the working directory: "m" is also a letter of the message's words.
    expect(withModelId(noTemplate('m'), 'm', 'stories').message).toBe(
      'stories: the model has no chat template (model.ie.json has no chat member)',
    );
  });
});
