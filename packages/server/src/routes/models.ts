/** GET /v1/models and /v1/models/{id}: the one model served. */
import type { FastifyInstance } from 'fastify';
import { checkModel } from './context.js';

/** `created` is when the server started: the model has no date of its own worth telling. */
export function registerModels(app: FastifyInstance, modelId: string, created: number): void {
  const modelObject = () => ({ id: modelId, object: 'model', created, owned_by: 'ie' });
  app.get('/v1/models', async () => ({ object: 'list', data: [modelObject()] }));
  app.get('/v1/models/:id', async (req) => {
    const { id } = req.params as { id: string };
    checkModel(id, modelId);
    return modelObject();
  });
}
