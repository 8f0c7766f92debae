export { squaredEdt, type Spacing3 } from './edt.js';
export { maskEdges, directedDistances, surfaceDistances, unionBox, crop, percentile, type Box3, type Shape3, type SurfaceDistances } from './surface.js';
export { computeSegmentationMetrics, diceFromCounts, type ClassMetrics, type LabelArray, type SegmentationMetricOptions } from './segmentation.js';
export {
  MetricAccumulator,
  jsonSafe,
  METRIC_NAMES,
  type MetricName,
  type CaseMetrics,
  type MetricSummary,
  type ClassSummary,
  type AggregateMetrics,
  type MetricAccumulatorOptions,
} from './accumulator.js';
export { wilcoxonSignedRank, averageRanks, type WilcoxonResult } from './wilcoxon.js';
