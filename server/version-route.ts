import type { FastifyInstance } from 'fastify';
import type { BuildInfo } from '../common/build-info.js';
import { z } from 'zod';
import { allowOnly } from './http-methods.js';

export interface VersionBody {
  version: string;
  git_commit: string;
  build_date: string;
  node_version: string;
}

/** GET (and HEAD) /version with the build fixed at build time; OPTIONS 204; others 405. */
export function registerVersionRoute(app: FastifyInstance, build: BuildInfo): void {
  const body: VersionBody = {
    version: build.version,
    git_commit: build.git_commit,
    build_date: build.build_date,
    node_version: process.version,
  };
  app.get(
    '/version',
    {
      schema: {
        tags: ['Operations'],
        summary: 'The build: package version, git commit, build date, Node.js version',
        response: {
          200: z.object({
            version: z.string(),
            git_commit: z.string(),
            build_date: z.string(),
            node_version: z.string(),
          }),
        },
      },
    },
    async (_request, reply) => reply.send(body),
  );
  allowOnly(app, '/version', ['GET']);
}
