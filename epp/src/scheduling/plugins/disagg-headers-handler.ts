import { setRequestHeaders, type PreRequest } from '../../requestcontrol/hooks';
import { aliasOf, definePlugin, parameters } from '../plugin';
import type { LLMRequest, SchedulingResult } from '../types';
import { PREFILLER_HOST_PORT_HEADER } from './disagg-profile-handler';

/**
 * The request header naming the encoder pods, comma-separated `ip:port`s, which llm-d's routing sidecar reads for
 * E/P/D (llm-d-router v0.10.0 `pkg/common/routing/common.go` EncoderEndpointsHeader).
 */
export const ENCODER_HOSTS_PORTS_HEADER = 'x-encoder-hosts-ports';

export interface DisaggHeadersHandlerParameters {
  /** The profile whose pick is the prefill pod. @default "prefill" */
  prefillProfile?: string;
  /** The profile whose picks are the encoder pods (E/P/D; no kvroute handler runs one). @default "encode" */
  encodeProfile?: string;
}

/**
 * `disagg-headers-handler` and its older name `prefill-header-handler` (llm-d-router v0.10.0
 * `pkg/epp/framework/plugins/scheduling/profilehandler/disagg/disagg_headers_handler.go`, deprecated there since
 * `disagg-profile-handler` names the prefill pod itself): a pre-request hook that names the prefill profile's pick in
 * `x-prefiller-host-port` (`ip:port`) and the encode profile's picks in `x-encoder-hosts-ports`. llm-d's guides still
 * list it (`test/integration/epp/wellknown_configs_test.go`: pd-disaggregation, wide-ep-lws and the data-parallel
 * variant, where the deprecated `pd-profile-handler` does not set the header). Upstream deletes a client's own value
 * from the headers it re-sets, which leaves the client's header on the request in Envoy; kvroute blanks it, as
 * `disagg-profile-handler` does here, so a client cannot choose the prefill or encoder pods. Listed beside
 * `disagg-profile-handler`, both write the same value.
 */
class DisaggHeadersHandler implements PreRequest {
  constructor(readonly type: string, readonly name: string, private readonly p: Required<DisaggHeadersHandlerParameters>) {}

  preRequest(request: LLMRequest, result: SchedulingResult): void {
    const headers: Record<string, string> = {};
    const prefill = result.profileTargets?.get(this.p.prefillProfile);
    if (prefill !== undefined) headers[PREFILLER_HOST_PORT_HEADER] = prefill.endpoint.key;
    else if (request.headers[PREFILLER_HOST_PORT_HEADER] !== undefined) headers[PREFILLER_HOST_PORT_HEADER] = '';
    const encode = result.profileTargets?.get(this.p.encodeProfile);
    if (encode !== undefined) headers[ENCODER_HOSTS_PORTS_HEADER] = encode.endpoint.key;
    else if (request.headers[ENCODER_HOSTS_PORTS_HEADER] !== undefined) headers[ENCODER_HOSTS_PORTS_HEADER] = '';
    if (Object.keys(headers).length > 0) setRequestHeaders(request, headers);
  }
}

export const disaggHeadersHandler = definePlugin({
  type: 'disagg-headers-handler',
  kinds: ['pre-request'],
  parameters: parameters<DisaggHeadersHandlerParameters>((fields) => ({
    prefillProfile: fields.optionalString('prefillProfile') ?? 'prefill',
    encodeProfile: fields.optionalString('encodeProfile') ?? 'encode',
  })),
  create: (name, p) => new DisaggHeadersHandler('disagg-headers-handler', name, p),
});

/** `prefill-header-handler`: the deprecated alias upstream keeps (`PrefillHeaderHandlerType`). */
export const prefillHeaderHandler = aliasOf('prefill-header-handler', disaggHeadersHandler);
