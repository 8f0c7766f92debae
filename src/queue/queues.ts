import { Queue, type JobsOptions } from 'bullmq';
import { Redis } from 'ioredis';
import { QueueConfigError } from './errors.js';
import { redact, type RedisTarget } from './redis-url.js';

/** Two queues, so a machine can serve only predictions (short) or only training runs (hours). */
export const QUEUE_NAMES = ['predict', 'train'] as const;
export type QueueName = (typeof QUEUE_NAMES)[number];

/** Every key lives under this prefix, apart from any other BullMQ user of the same Redis. */
export const KEY_PREFIX = 'uxnet';

/**
 * Stall-detection defaults (milliseconds). A worker renews the lock on each of its jobs every
 * lockDuration/2; a worker that dies stops renewing, and within stalledInterval after the lock has
 * expired another worker's check moves the job back to waiting. So a dead worker's job restarts
 * elsewhere within lockDuration + stalledInterval (60 s by default). A job that stalls more than
 * maxStalledCount times (it keeps killing its workers) fails instead of looping.
 */
export const STALL_DEFAULTS = { lockDuration: 30_000, stalledInterval: 30_000, maxStalledCount: 2 } as const;

/** Retries of a failing job: attempts in all, exponential backoff starting at `backoff` ms. */
export const RETRY_DEFAULTS = { attempts: 3, backoff: 5_000 } as const;

export function connectionOptions(target: RedisTarget): { url: string; maxRetriesPerRequest: null } {
  // Workers must wait through a Redis restart rather than fail their commands (BullMQ requires null).
  return { url: target.url, maxRetriesPerRequest: null };
}

export function jobOptions(id: string, retry: { attempts: number; backoff: number }): JobsOptions {
  return {
    jobId: id,
    attempts: retry.attempts,
    backoff: { type: 'exponential', delay: retry.backoff },
    // Finished jobs stay, so that a resubmission recognises them; `uxnet queue clean` removes them.
    removeOnComplete: false,
    removeOnFail: false,
  };
}

export function openQueue(target: RedisTarget, name: QueueName): Queue {
  return new Queue(name, { connection: connectionOptions(target), prefix: KEY_PREFIX });
}

/**
 * Connects once, authenticates and pings, failing fast with one redacted line: without this a
 * wrong host or password would leave the client retrying forever in silence.
 */
export async function checkRedis(target: RedisTarget, timeoutMs = 5_000): Promise<{ warnings: string[] }> {
  const client = new Redis(target.url, { lazyConnect: true, connectTimeout: timeoutMs, maxRetriesPerRequest: 0, retryStrategy: () => null, enableOfflineQueue: false });
  // connect() itself may only say "Connection is closed"; the event carries the cause (WRONGPASS...).
  let cause: Error | null = null;
  client.on('error', (e: Error) => {
    cause ??= e;
  });
  try {
    await client.connect();
    await client.ping();
    const policy = (await client.config('GET', 'maxmemory-policy').catch(() => null)) as string[] | null;
    const warnings: string[] = [];
    if (policy && policy[1] && policy[1] !== 'noeviction') warnings.push(`Redis maxmemory-policy is ${policy[1]}; BullMQ needs noeviction, or queued jobs may be evicted`);
    return { warnings };
  } catch (e) {
    throw new QueueConfigError(`cannot use Redis at ${target.display}: ${redact((cause ?? (e as Error)).message, target.secrets)}`);
  } finally {
    client.disconnect();
  }
}
