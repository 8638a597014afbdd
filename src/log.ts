// Structured logs to stderr (stdout carries only the chosen output format).
import { pino, type Logger } from 'pino';

const level = process.env.PATCHVET_LOG_LEVEL ?? process.env.LOG_LEVEL ?? 'warn';

export const log: Logger = pino(
  {
    name: 'patchvet',
    level,
    redact: {
      paths: [
        'password', '*.password', 'apiKey', '*.apiKey', 'token', '*.token', 'privateKey', '*.privateKey',
        'secret', '*.secret', 'webhookSecret', '*.webhookSecret', 'headers.authorization', '*.headers.authorization',
        'url.password', 'OPENAI_API_KEY', '*.OPENAI_API_KEY', 'PRIVATE_KEY', '*.PRIVATE_KEY', 'WEBHOOK_SECRET', '*.WEBHOOK_SECRET',
      ],
      censor: '[redacted]',
    },
  },
  pino.destination({ fd: 2, sync: true }),
);
