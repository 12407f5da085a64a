export * from './types';
export * from './predicted';
export * from './measured';
export * from './text';
