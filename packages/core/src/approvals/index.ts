export * from './types.js';
export {
  openApprovals,
  type ApprovalsOptions,
  MAX_GRANT_MS,
  MAX_REVIEW_TIMEOUT_MS,
  mayApprove,
  RESTART_REASON,
  SHUTDOWN_REASON,
  SWEEP_REASON,
  DEFAULT_REPLICA_ID,
} from './service.js';
export {
  type ApprovalBackend,
  type ApprovalSnapshot,
  type WriteOptions,
  type TransitionOptions,
  type JournalBackendOptions,
  openJournalBackend,
  JournalBackend,
} from './backend.js';
export {
  type NotifierConfig,
  type NotificationEvent,
  type NotifiedRequest,
  type WebhookPayload,
  type SlackMessage,
  type VerifyWebhookOptions,
  validateNotifierConfig,
  buildWebhookPayload,
  buildSlackMessage,
  webhookSignature,
  verifyWebhookSignature,
} from './notifier.js';
export { ApprovalStore, type ApprovalStoreOptions, type StoreEntry, JOURNAL_FILE, DEFAULT_RETENTION_MS, checkStoreEntry } from './store.js';
