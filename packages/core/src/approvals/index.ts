export * from './types.js';
export {
  openApprovals,
  type ApprovalsOptions,
  MAX_GRANT_MS,
  MAX_REVIEW_TIMEOUT_MS,
  mayApprove,
} from './service.js';
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
export { ApprovalStore, type ApprovalStoreOptions, JOURNAL_FILE } from './store.js';
