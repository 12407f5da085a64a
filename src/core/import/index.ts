/** Importing other benchmark tools' results as stored runs: read (pure), then save to the store. */
export { detectFormat, FORMATS_TEXT, readResults, type Format } from './detect';
export { readAiperfCsv, readAiperfJson, readAiperfJsonl } from './aiperf';
export { readGuidellm } from './guidellm';
export { readInferencePerf, STAGE_FILE, SUMMARY_FILE, type NamedText } from './inference-perf';
export { readMlEnergy } from './mlenergy';
export { readVllmJson, readVllmSweepCsv } from './vllm';
export { saveImported, sourceOf, rawName, type ImportedMeta, type RawFile } from './save';
export { importedSummary } from './summary';
export { ImportError, TOOL_NAMES, type ImportedPoint, type ImportedRun, type Stat, type ToolId } from './types';
export { importFiles, readSourceFiles, type SourceFile } from './files';
