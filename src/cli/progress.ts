import cliProgress from 'cli-progress';

export interface Progress {
  /** Advances to `value` (absolute) and updates the extra fields shown after the bar. */
  update(value: number, fields?: Record<string, string | number>): void;
  increment(by?: number, fields?: Record<string, string | number>): void;
  setTotal(total: number): void;
  stop(): void;
}

export interface ProgressOptions {
  label: string;
  total: number;
  /** Names of extra fields shown after the bar, e.g. ['loss', 'rate']. */
  fields?: string[];
  stream?: NodeJS.WriteStream;
  /** Force the non-interactive line mode (used in tests and when stderr is not a terminal). */
  plain?: boolean;
  /** Seconds between lines in plain mode. */
  plainInterval?: number;
  /** Where the work starts (a resumed run's completed steps): the bar starts there, and the ETA counts only what this process did. */
  start?: number;
  /** The clock, in milliseconds (tests pass their own). */
  now?: () => number;
}

function fmtSeconds(s: number): string {
  if (!Number.isFinite(s) || s < 0) return '?';
  if (s < 60) return `${s.toFixed(0)}s`;
  if (s < 3600) return `${Math.floor(s / 60)}m${String(Math.round(s % 60)).padStart(2, '0')}s`;
  return `${Math.floor(s / 3600)}h${String(Math.floor((s % 3600) / 60)).padStart(2, '0')}m`;
}

/**
 * A progress bar on stderr: a live bar (cli-progress) on a terminal, and a concise line every few
 * seconds otherwise, so logs of long CI or nohup runs still show progress without flooding.
 */
export function createProgress(opts: ProgressOptions): Progress {
  const stream = opts.stream ?? process.stderr;
  const fields = opts.fields ?? [];
  const fieldFmt = fields.map((f) => ` ${f} {${f}}`).join('');
  const quiet = process.env.UXNET_QUIET === '1';
  if (!quiet && !opts.plain && stream.isTTY) {
    const bar = new cliProgress.SingleBar(
      { format: `${opts.label} |{bar}| {value}/{total} {percentage}% eta {eta_formatted}${fieldFmt}`, stream, hideCursor: true, clearOnComplete: false, etaBuffer: 20 },
      cliProgress.Presets.shades_classic,
    );
    bar.start(opts.total, opts.start ?? 0, Object.fromEntries(fields.map((f) => [f, ''])));
    return {
      update: (v, f) => bar.update(v, f),
      increment: (by = 1, f) => bar.increment(by, f),
      setTotal: (t) => bar.setTotal(t),
      stop: () => bar.stop(),
    };
  }
  const now = opts.now ?? Date.now;
  let total = opts.total;
  const from = opts.start ?? 0;
  let value = from;
  let last = 0;
  const start = now();
  const current: Record<string, string | number> = {};
  const interval = (opts.plainInterval ?? 5) * 1000;
  const line = (final: boolean) => {
    if (quiet) return;
    const elapsed = (now() - start) / 1000;
    // The rate of this process alone: a resumed run's earlier steps took no time here.
    const eta = value > from ? (elapsed / (value - from)) * (total - value) : NaN;
    const extra = fields
      .filter((f) => current[f] !== undefined && current[f] !== '')
      .map((f) => ` ${f} ${current[f]}`)
      .join('');
    stream.write(
      `${opts.label} ${value}/${total} (${total ? Math.floor((100 * value) / total) : 100}%) elapsed ${fmtSeconds(elapsed)}${final ? '' : ` eta ${fmtSeconds(eta)}`}${extra}\n`,
    );
  };
  const maybe = () => {
    const t = now();
    if (t - last >= interval || value >= total) {
      last = t;
      line(value >= total);
    }
  };
  return {
    update: (v, f) => {
      value = v;
      Object.assign(current, f);
      maybe();
    },
    increment: (by = 1, f) => {
      value += by;
      Object.assign(current, f);
      maybe();
    },
    setTotal: (t) => {
      total = t;
    },
    stop: () => {
      if (value < total) line(true);
    },
  };
}
