/**
 * The layers of uxnet3d, lowest first; a module may import its own floor and any floor below, never
 * one above (checked by `npm run lint`, part of `npm test`):
 *   engine  <-  backends, nn, io  <-  models, data, metrics  <-  infer, train (queue)  <-  cli, browser, web
 * Browser code (src/browser, web/src) and the engine import no node:* module.
 */
const floor = (dirs) => `^src/(${dirs.join('|')})/`;
const ENGINE = ['engine'];
const F1 = ['backends', 'nn', 'io'];
const F2 = ['models', 'data', 'metrics'];
const F3 = ['infer', 'train'];
const QUEUE = ['queue'];
const TOP = ['cli', 'browser'];

const above = (name, from, higher) => ({
  name,
  severity: 'error',
  comment: `${from.join(', ')} must not import from a higher layer (${higher.join(', ')})`,
  from: { path: floor(from) },
  to: { path: [floor(higher), '^web/'] },
});

module.exports = {
  forbidden: [
    above('engine-is-the-base', ENGINE, [...F1, ...F2, ...F3, ...QUEUE, ...TOP]),
    above('backends-nn-io-below-models-data', F1, [...F2, ...F3, ...QUEUE, ...TOP]),
    above('models-data-metrics-below-infer-train', F2, [...F3, ...QUEUE, ...TOP]),
    above('infer-train-below-cli-browser', F3, [...QUEUE, ...TOP]),
    above('queue-below-cli-browser', QUEUE, TOP),
    { name: 'cli-not-browser', severity: 'error', comment: 'the CLI and the browser app are separate tops', from: { path: '^src/cli/' }, to: { path: ['^src/browser/', '^web/'] } },
    { name: 'browser-not-cli', severity: 'error', comment: 'the browser app never imports the CLI', from: { path: ['^src/browser/', '^web/'] }, to: { path: '^src/cli/' } },
    {
      name: 'browser-code-no-node',
      severity: 'error',
      comment: 'browser code (src/browser, web/src) and the engine run in browsers: no node:* imports (web/vite.config.ts is build tooling)',
      from: { path: ['^src/browser/', '^web/src/', '^src/engine/'] },
      to: { dependencyTypes: ['core'] },
    },
    {
      name: 'no-circular-across-layers',
      severity: 'error',
      comment: 'a cycle between two top-level folders means one of them sits on the wrong floor',
      from: { path: '^src/([^/]+)/' },
      to: { circular: true, path: '^src/([^/]+)/', pathNot: '^src/$1/' },
    },
  ],
  options: {
    doNotFollow: { path: 'node_modules' },
    // Core modules must stay in the graph (the no-node rule looks at them); packages are leaves.
    exclude: { path: '(^|/)dist/' },
    tsConfig: { fileName: 'tsconfig.json' },
    tsPreCompilationDeps: true,
    enhancedResolveOptions: { extensions: ['.ts', '.js'] },
  },
};
