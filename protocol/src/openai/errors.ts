/**
 * OpenAI's error shape, `{"error": {"message", "type", "param", "code"}}`, which the EPP's local replies (400, 413, 429,
 * 503, 500) use. `code` is a string (or null) as in OpenAI's API reference, e.g. `invalid_json`, and `type` is OpenAI's
 * (`invalid_request_error`, …); the HTTP status travels as the status line.
 *
 * It is not vLLM's shape, so behind one gateway a client sees two, depending on who refused the request. vLLM 0.10.0
 * (the default image's, and the simulator's default mode) answers a flat
 * `{"object": "error", "message", "type", "param", "code"}`; vLLM >= 0.10.1 nests it as here (`{"error": {…}}`). In
 * both, `code` is the integer HTTP status (e.g. 400), never a string, and `type` is vLLM's (e.g. `BadRequestError`).
 * So a client written for 0.10.0 finds no top-level `message` in the EPP's answers, and one written for 0.10.1 or
 * later finds a string where it expects an integer `code`.
 * @see https://platform.openai.com/docs/guides/error-codes
 */

export interface OpenAiError {
  readonly message: string;
  readonly type: string;
  readonly param: string | null;
  readonly code: string | null;
}

export interface OpenAiErrorBody {
  readonly error: OpenAiError;
}

/** The `type` OpenAI's SDKs map each status to; others fall back by class. */
const TYPE_BY_STATUS: Readonly<Record<number, string>> = {
  400: 'invalid_request_error',
  401: 'authentication_error',
  403: 'permission_error',
  404: 'not_found_error',
  405: 'invalid_request_error',
  413: 'invalid_request_error',
  429: 'rate_limit_error',
  503: 'service_unavailable_error',
};

export function openAiErrorType(status: number): string {
  return TYPE_BY_STATUS[status] ?? (status >= 500 ? 'server_error' : 'invalid_request_error');
}

export interface OpenAiErrorOptions {
  /** The request field at fault, e.g. `messages[2].role`. @default null */
  readonly param?: string | null;
  /** A stable machine-readable reason, e.g. `model_not_found`. @default null */
  readonly code?: string | null;
  /** @default by status: `openAiErrorType(status)` */
  readonly type?: string;
}

export function openAiError(status: number, message: string, options: OpenAiErrorOptions = {}): OpenAiErrorBody {
  return {
    error: {
      message,
      type: options.type ?? openAiErrorType(status),
      param: options.param ?? null,
      code: options.code ?? null,
    },
  };
}

/** The same, serialized: the body of a JSON error response. */
export function openAiErrorJson(status: number, message: string, options: OpenAiErrorOptions = {}): string {
  return JSON.stringify(openAiError(status, message, options));
}

/** An error that carries its HTTP status and OpenAI fields; servers render it with `toJSON()`. */
export class OpenAiApiError extends Error {
  readonly param: string | null;
  readonly code: string | null;
  readonly type: string;

  constructor(readonly status: number, message: string, options: OpenAiErrorOptions = {}) {
    super(message);
    this.name = 'OpenAiApiError';
    this.param = options.param ?? null;
    this.code = options.code ?? null;
    this.type = options.type ?? openAiErrorType(status);
  }

  toJSON(): OpenAiErrorBody {
    return { error: { message: this.message, type: this.type, param: this.param, code: this.code } };
  }
}
