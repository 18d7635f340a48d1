/**
 * A deliberately simple ext_proc server for the tests that need the EPP to misbehave on cue, or to see exactly what
 * arrives on the wire: it speaks the real service (the EPP's own service definition, so the same protos), answers each
 * message the plainest way (CONTINUE; in FULL_DUPLEX_STREAMED each body chunk streamed straight back), records every
 * message and stream event in order (`end` for the half-close, `cancelled` for the reset), and can stay silent on some
 * messages or fail the stream with a gRPC status when a given message arrives. It makes no routing decision: requests
 * go to the gateway's fallback policy.
 */
import * as grpc from '@grpc/grpc-js';
import { extProcServiceDefinition } from '@kvroute/epp/extproc';
import { bodyResponse, headersResponse, streamedBodyChunk, trailersResponse, type ProcessingRequest } from '@kvroute/protocol/envoy';
import { LOOPBACK } from './harness';

export type MessageKind = 'request_headers' | 'request_body' | 'request_trailers' | 'response_headers' | 'response_body' | 'response_trailers';

export interface Script {
  /** Messages that get no answer (recorded all the same). */
  readonly silentOn?: readonly MessageKind[];
  /**
   * Ends the stream with this gRPC status once a message of this kind arrives; with `streams`, only on the streams
   * (numbered from 0 in the order they opened) it returns true for.
   */
  readonly failOn?: { readonly message: MessageKind; readonly code: grpc.status; readonly streams?: (index: number) => boolean };
  /** Answers this message with a response-trailers answer, which nothing asked for (a spurious message). */
  readonly outOfOrderOn?: MessageKind;
  /**
   * Answers a message with these ProcessingResponses (written in order) instead of the plain answer; undefined keeps
   * the plain answer. `plain` is that answer, to send along.
   */
  readonly respond?: (kind: MessageKind, msg: ProcessingRequest, plain: unknown) => readonly unknown[] | undefined;
}

export interface ScriptedStream {
  /** Message kinds and stream events (`end`, `cancelled`, `failed`), in arrival order. */
  readonly events: string[];
  /** Every message received, as decoded. */
  readonly messages: ProcessingRequest[];
  /** Request body bytes received. */
  requestBodyBytes: number;
}

export interface ScriptedExtProc {
  readonly port: number;
  readonly address: string;
  readonly streams: ScriptedStream[];
  stop(): Promise<void>;
}

function kindOf(msg: ProcessingRequest): MessageKind | undefined {
  // proto-loader's `oneofs: true` names the set member of the `request` oneof.
  return msg.request as MessageKind | undefined;
}

export async function startScriptedExtProc(script: Script = {}): Promise<ScriptedExtProc> {
  const streams: ScriptedStream[] = [];
  const server = new grpc.Server();
  server.addService(extProcServiceDefinition(), {
    Process: (call: grpc.ServerDuplexStream<ProcessingRequest, unknown>) => {
      const stream: ScriptedStream = { events: [], messages: [], requestBodyBytes: 0 };
      const index = streams.length;
      streams.push(stream);
      let duplex = false;
      let over = false;
      call.on('data', (msg: ProcessingRequest) => {
        const kind = kindOf(msg);
        if (!kind || over) return;
        stream.events.push(kind);
        stream.messages.push(msg);
        if (kind === 'request_headers') duplex = msg.protocol_config?.request_body_mode === 'FULL_DUPLEX_STREAMED';
        if (kind === 'request_body') stream.requestBodyBytes += msg.request_body?.body?.length ?? 0;
        if (script.failOn?.message === kind && (script.failOn.streams?.(index) ?? true)) {
          over = true;
          stream.events.push('failed');
          call.emit('error', { code: script.failOn.code, details: `scripted failure on ${kind}`, metadata: new grpc.Metadata() });
          return;
        }
        if (script.silentOn?.includes(kind)) return;
        const plain = answer(kind, msg, duplex);
        const custom = script.respond?.(kind, msg, plain);
        if (custom) for (const m of custom) call.write(m);
        else call.write(script.outOfOrderOn === kind ? trailersResponse('response') : plain);
      });
      call.on('end', () => stream.events.push('end'));
      call.on('cancelled', () => stream.events.push('cancelled'));
      call.on('error', () => undefined);
    },
  });
  const port = await new Promise<number>((resolve, reject) => {
    server.bindAsync(`${LOOPBACK}:0`, grpc.ServerCredentials.createInsecure(), (err, p) => (err ? reject(err) : resolve(p)));
  });
  return {
    port,
    address: `${LOOPBACK}:${port}`,
    streams,
    stop: () => new Promise<void>((resolve) => {
      server.forceShutdown();
      resolve();
    }),
  };
}

function answer(kind: MessageKind, msg: ProcessingRequest, requestDuplex: boolean): unknown {
  switch (kind) {
    case 'request_headers': return headersResponse('request');
    case 'request_body': {
      const b = msg.request_body ?? {};
      return requestDuplex ? streamedBodyChunk('request', b.body ?? Buffer.alloc(0), b.end_of_stream === true) : bodyResponse('request');
    }
    case 'request_trailers': return trailersResponse('request');
    case 'response_headers': return headersResponse('response');
    case 'response_body': {
      const b = msg.response_body ?? {};
      return streamedBodyChunk('response', b.body ?? Buffer.alloc(0), b.end_of_stream === true);
    }
    case 'response_trailers': return trailersResponse('response');
  }
}
