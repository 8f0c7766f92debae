import { QueueConfigError } from './errors.js';

/**
 * Redis connection URLs for the job queue. Passwords travel inside the URL (or UXNET_REDIS_URL), so
 * everything this module hands out for display has them replaced: a URL is never printed as given.
 */

export interface RedisTarget {
  /** The URL as given, for the client only. */
  url: string;
  /** The URL with user info replaced, safe to print. */
  display: string;
  tls: boolean;
  /** Strings that must never reach output (the password, raw and percent-decoded). */
  secrets: string[];
}

export function parseRedisUrl(url: string | undefined): RedisTarget {
  if (!url) throw new QueueConfigError('no Redis URL: pass --redis redis://[:password@]host:port[/db] or set UXNET_REDIS_URL');
  let u: URL;
  try {
    u = new URL(url);
  } catch {
    // The unparsable text may itself hold the password, so it is not echoed.
    throw new QueueConfigError('--redis is not a valid URL (expected redis://[:password@]host:port[/db] or rediss://...)');
  }
  if (u.protocol !== 'redis:' && u.protocol !== 'rediss:') throw new QueueConfigError(`--redis must start with redis:// or rediss://, not ${u.protocol}//`);
  if (!u.hostname) throw new QueueConfigError('--redis names no host');
  const secrets: string[] = [];
  if (u.password) {
    secrets.push(u.password);
    let decoded: string;
    try {
      decoded = decodeURIComponent(u.password);
    } catch {
      throw new QueueConfigError('the password in --redis must be percent-encoded (% as %25, @ as %40, / as %2F, : as %3A)');
    }
    if (decoded !== u.password) secrets.push(decoded);
  }
  const auth = u.username || u.password ? `${u.username ? decodeURIComponent(u.username) : ''}${u.password ? ':***' : ''}@` : '';
  const display = `${u.protocol}//${auth}${u.host}${u.pathname && u.pathname !== '/' ? u.pathname : ''}`;
  return { url, display, tls: u.protocol === 'rediss:', secrets };
}

/** Replaces every occurrence of a secret in `text` (error messages from drivers may echo URLs). */
export function redact(text: string, secrets: readonly string[]): string {
  let out = text;
  for (const s of secrets) if (s) out = out.split(s).join('***');
  return out;
}
