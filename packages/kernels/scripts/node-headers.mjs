// Where Node's C headers (node_api.h) are, for the builds that compile against them.
import { existsSync } from 'node:fs';
import { dirname, join } from 'node:path';

/** npm_config_nodedir, else this Node's own install prefix when it carries include/node; undefined when neither. */
export function nodedir() {
  if (process.env.npm_config_nodedir) return process.env.npm_config_nodedir;
  const prefix = dirname(dirname(process.execPath));
  if (existsSync(join(prefix, 'include', 'node', 'node_api.h'))) return prefix;
  return undefined;
}

/** The include/node folder under nodedir(). */
export function nodeHeadersDir() {
  const d = nodedir();
  return d && existsSync(join(d, 'include', 'node', 'node_api.h')) ? join(d, 'include', 'node') : undefined;
}
