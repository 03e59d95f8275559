export * from './config.js';
export { Policy, type Decision } from './engine.js';
