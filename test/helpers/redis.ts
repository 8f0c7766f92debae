import { spawn, type ChildProcess } from 'node:child_process';
import { accessSync, constants, mkdtempSync, rmSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { delimiter, join } from 'node:path';

/** The redis-server binary on PATH (Debian's `redis-server` package), or null. */
export function findRedisServer(): string | null {
  for (const dir of (process.env.PATH ?? '').split(delimiter)) {
    const p = join(dir, 'redis-server');
    try {
      accessSync(p, constants.X_OK);
      return p;
    } catch {
      /* not here */
    }
  }
  return null;
}

export const REDIS_MISSING = findRedisServer() === null ? 'redis-server is not installed (Debian: apt-get install redis-server); the queue tests need a real one' : false;

export async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = createServer();
    s.on('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const port = (s.address() as { port: number }).port;
      s.close(() => resolve(port));
    });
  });
}

export interface RedisOptions {
  password?: string;
  /** Serve TLS only (rediss://) with these PEM files; clients are not asked for certificates. */
  tls?: { cert: string; key: string; ca: string };
}

/**
 * A private redis-server on 127.0.0.1, a free port and a temporary folder, with append-only-file
 * persistence fsynced on every write (as the README recommends for queues that must not lose jobs).
 */
export class TestRedis {
  readonly dir = mkdtempSync(join(tmpdir(), 'uxnet-redis-'));
  private proc: ChildProcess | null = null;
  port = 0;

  constructor(readonly opts: RedisOptions = {}) {}

  url(password = this.opts.password): string {
    return `${this.opts.tls ? 'rediss' : 'redis'}://${password ? `:${encodeURIComponent(password)}@` : ''}127.0.0.1:${this.port}`;
  }

  async start(): Promise<void> {
    if (!this.port) this.port = await freePort();
    const args = [
      '--bind',
      '127.0.0.1',
      '--dir',
      this.dir,
      '--appendonly',
      'yes',
      '--appendfsync',
      'always',
      '--save',
      '',
      '--maxmemory-policy',
      'noeviction',
      '--daemonize',
      'no',
      '--protected-mode',
      'no',
    ];
    if (this.opts.password) args.push('--requirepass', this.opts.password);
    if (this.opts.tls)
      args.push(
        '--port',
        '0',
        '--tls-port',
        String(this.port),
        '--tls-cert-file',
        this.opts.tls.cert,
        '--tls-key-file',
        this.opts.tls.key,
        '--tls-ca-cert-file',
        this.opts.tls.ca,
        '--tls-auth-clients',
        'no',
      );
    else args.push('--port', String(this.port));
    const proc = spawn(findRedisServer()!, args, { stdio: ['ignore', 'pipe', 'pipe'] });
    this.proc = proc;
    let out = '';
    await new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`redis-server did not start within 15 s:\n${out}`)), 15_000);
      const onData = (b: Buffer) => {
        out += b.toString();
        if (/Ready to accept connections/.test(out)) {
          clearTimeout(timer);
          resolve();
        }
      };
      proc.stdout!.on('data', onData);
      proc.stderr!.on('data', onData);
      proc.once('exit', (code) => {
        clearTimeout(timer);
        reject(new Error(`redis-server exited (${code}):\n${out}`));
      });
    });
    proc.removeAllListeners('exit');
    proc.stdout!.resume();
    proc.stderr!.resume();
  }

  private async end(signal: NodeJS.Signals): Promise<void> {
    const p = this.proc;
    if (!p || p.exitCode !== null || p.signalCode !== null) return;
    await new Promise<void>((resolve) => {
      p.once('exit', () => resolve());
      p.kill(signal);
    });
    this.proc = null;
  }

  /** A crash: no chance to write anything more. */
  kill(): Promise<void> {
    return this.end('SIGKILL');
  }

  stop(): Promise<void> {
    return this.end('SIGTERM');
  }

  async dispose(): Promise<void> {
    await this.kill();
    rmSync(this.dir, { recursive: true, force: true });
  }
}
