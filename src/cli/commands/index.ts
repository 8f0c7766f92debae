import type { Command } from 'commander';
import { registerForward } from './forward.js';
import { registerTransform } from './transform.js';
import { registerPreprocess } from './preprocess.js';
import { registerExportOnnx } from './export-onnx.js';
import { registerEvaluate } from './evaluate.js';
import { registerImportPth } from './import-pth.js';
import { registerPredict } from './predict.js';
import { registerTrain } from './train.js';
import { registerDemo } from './demo.js';
import { registerQueue } from './queue.js';
import { registerCrossval } from './crossval.js';
import { registerCompare } from './compare.js';
import { registerEnsemble } from './ensemble.js';
import { registerCrossvalPredict } from './crossval-predict.js';

/** Each CLI command lives in its own module and adds itself to the program. */
export type CommandRegistrar = (program: Command) => void;

export const commands: CommandRegistrar[] = [
  registerForward,
  registerExportOnnx,
  registerTransform,
  registerPreprocess,
  registerEvaluate,
  registerImportPth,
  registerPredict,
  registerTrain,
  registerDemo,
  registerCrossval,
  registerCrossvalPredict,
  registerCompare,
  registerEnsemble,
];
commands.push(registerQueue);
