/**
 * The protocol's floor for the EPP benchmark: an ext_proc server that answers Envoy's messages in the EPP's own
 * full-duplex pattern (request body chunks held until the last, then the headers answer and the chunks streamed back;
 * CONTINUE for response headers) but picks nothing: the chunks are kept as received, never joined, decoded or parsed,
 * and there is no scheduling and no scraping. Same gRPC library, protos and message builders as the EPP, in its own
 * process like the EPP under test, so the difference between the two is what the EPP's own work costs. (Echoing each
 * chunk as it arrives instead measured slower than the EPP at 128 KB: more, smaller writes per stream.) The chunks go
 * back the way the EPP sends a body (`extproc/stream.ts` sendDuplexBody): a single chunk as it came, several joined and
 * re-cut into pieces of at most MAX_STREAMED_CHUNK_BYTES; sent back as received (nine 16 KB chunks for a 128 KB body
 * against the EPP's three) the floor measured slower than the EPP at 128 KB, which made it no floor. Run as a child
 * process (fork): sends `{ port }` once listening.
 */
import * as grpc from '@grpc/grpc-js';
import { chunk, headersResponse, streamedBodyChunk, type ProcessingRequest } from '@kvroute/protocol/envoy';
import { extProcServiceDefinition, MAX_STREAMED_CHUNK_BYTES } from '../src/extproc/server';

async function main(): Promise<void> {
  // The EPP's own service definition (since session 10): its lean request reader, which hands on the decoded members
  // without proto-loader's object tree (every default member, a second object per header), and its serializer. Before,
  // the floor decoded with proto-loader's deserializer, work the EPP does not do, which made the floor costlier than
  // the protocol needs.
  const def = extProcServiceDefinition({ leanRequests: true });
  const server = new grpc.Server({ 'grpc.max_receive_message_length': 64 * 1024 * 1024 });
  server.addService(def, {
    Process: (call: grpc.ServerDuplexStream<ProcessingRequest, unknown>) => {
      let held: Buffer[] = [];
      call.on('data', (m: ProcessingRequest) => {
        if (m.request_headers) {
          if (m.request_headers.end_of_stream === true) call.write(headersResponse('request'));
        } else if (m.request_body) {
          held.push(m.request_body.body ?? Buffer.alloc(0));
          if (m.request_body.end_of_stream !== true) return;
          call.write(headersResponse('request'));
          const out = held.length === 1 ? held : chunk(Buffer.concat(held), MAX_STREAMED_CHUNK_BYTES);
          out.forEach((b, i) => call.write(streamedBodyChunk('request', b, i === out.length - 1)));
          held = [];
        } else if (m.response_headers) {
          call.write(headersResponse('response'));
        } else if (m.response_body) {
          call.write(streamedBodyChunk('response', m.response_body.body ?? Buffer.alloc(0), m.response_body.end_of_stream === true));
        }
      });
      call.on('end', () => call.end());
      call.on('error', () => undefined);
    },
  });
  const port = await new Promise<number>((resolve, reject) =>
    server.bindAsync('127.0.0.1:0', grpc.ServerCredentials.createInsecure(), (err, p) => (err ? reject(err) : resolve(p))));
  process.on('disconnect', () => server.tryShutdown(() => process.exit(0)));
  process.send?.({ type: 'port', port });
}

main().catch((e) => {
  console.error(e);
  process.exit(1);
});
