export * from './strategies.js';
export * from './detectors.js';
export * from './config.js';
export * from './sensitive.js';
