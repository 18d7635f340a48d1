/**
 * Workloads for the demo and the routing benchmark, deterministic from a seed:
 * - multi-turn chats: each session has an `x-session-id`, starts from one of a few shared system prompts, and sends
 *   its turns one after another, each carrying the whole history including the assistant's actual replies;
 * - RAG-style requests: a question over one of a few long shared documents (no session);
 * - shared-prefix groups (SGLang's generated-shared-prefix and GIE's high/low-cache shapes): a group prompt and a
 *   per-request question.
 * Text is drawn from an English-like vocabulary, so a real tokenizer splits it into realistic tokens.
 */

export interface ChatMessage {
  readonly role: 'system' | 'user' | 'assistant';
  readonly content: string;
}

const WORDS = ('the of and to in is that for it as with was on be at by this had not are but from or have an they which '
  + 'one you were all her she there would their we him been has when who will more no if out so said what up its about '
  + 'into than them can only other new some could time these two may then do first any my now such like our over man '
  + 'me even most made after also did many before must through back years where much your way well down should because '
  + 'each just those people how too little state good very make world still own see men work long get here between both '
  + 'life being under never day same another know while last might us great old year off come since against go came right '
  + 'used take three cache prefix token block router gateway kernel memory latency throughput request session model pod '
  + 'cluster replica queue prompt decode prefill attention tensor batch schedule envoy metric vector document answer').split(' ');

/** Mulberry32: small, fast, good enough for reproducible text. */
export function rng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** About `words` words of text; about 1.3 Qwen3 tokens per word. */
export function text(random: () => number, words: number): string {
  const out: string[] = [];
  for (let i = 0; i < words; i++) {
    let w = WORDS[Math.floor(random() * WORDS.length)];
    if (i % 14 === 0) w = w[0].toUpperCase() + w.slice(1);
    out.push(i % 14 === 13 ? `${w}.` : w);
  }
  return out.join(' ');
}

export interface WorkloadOptions {
  readonly seed: number;
  /** Shared system prompts the chats start from. */
  readonly systemPrompts: number;
  /** Words per system prompt. */
  readonly systemPromptWords: number;
  readonly sessions: number;
  readonly turnsPerSession: number;
  /** Words per user message. */
  readonly userWords: number;
  /** `max_tokens` of each reply. */
  readonly maxTokens: number;
  /** Shared documents the RAG requests ask about. */
  readonly documents: number;
  readonly documentWords: number;
  readonly ragRequests: number;
  readonly questionWords: number;
}

export const DEFAULT_WORKLOAD: WorkloadOptions = {
  seed: 7,
  systemPrompts: 4,
  systemPromptWords: 600,
  sessions: 24,
  turnsPerSession: 6,
  userWords: 40,
  maxTokens: 24,
  documents: 6,
  documentWords: 1500,
  ragRequests: 48,
  questionWords: 30,
};

/** A chat session: its id, its system prompt and the user turns it will send (replies come from the server). */
export interface SessionPlan {
  readonly kind: 'chat';
  readonly sessionId: string;
  readonly system: string;
  readonly userTurns: readonly string[];
}

/** A one-shot request over a shared document. */
export interface RagPlan {
  readonly kind: 'rag';
  readonly document: number;
  readonly messages: readonly ChatMessage[];
  /** Extra request headers (the routing benchmark's shared-prefix requests carry an `x-session-id` per user). */
  readonly headers?: Readonly<Record<string, string>>;
}

export interface Workload {
  readonly options: WorkloadOptions;
  readonly sessions: readonly SessionPlan[];
  readonly rag: readonly RagPlan[];
  readonly totalRequests: number;
}

export function buildWorkload(options: WorkloadOptions): Workload {
  const random = rng(options.seed);
  const systems = Array.from({ length: options.systemPrompts }, (_, i) =>
    `You are assistant #${i} of the kvroute demo. ${text(random, options.systemPromptWords)}`);
  const docs = Array.from({ length: options.documents }, (_, i) =>
    `Answer from this document only.\n\nDocument ${i}:\n${text(random, options.documentWords)}`);
  const sessions: SessionPlan[] = Array.from({ length: options.sessions }, (_, s) => ({
    kind: 'chat',
    sessionId: `session-${options.seed}-${s}`,
    system: systems[s % systems.length],
    userTurns: Array.from({ length: options.turnsPerSession }, (_, t) => `Turn ${t + 1}: ${text(random, options.userWords)}?`),
  }));
  const rag: RagPlan[] = Array.from({ length: options.ragRequests }, (_, r) => {
    const document = Math.floor(random() * docs.length);
    return {
      kind: 'rag',
      document,
      messages: [
        { role: 'system', content: docs[document] },
        { role: 'user', content: `Question ${r}: ${text(random, options.questionWords)}?` },
      ],
    };
  });
  return { options, sessions, rag, totalRequests: options.sessions * options.turnsPerSession + options.ragRequests };
}
