/**
 * Whether Envoy's Utility::Url::initialize(value, false) takes a value as an absolute URL (`source/common/http/utility.cc`
 * @ v1.35.0), the first test of isValidRefererValue, by which the connection manager decides to keep a Referer
 * (ConnectionManagerUtility::mutateRequestHeaders). initialize runs http_parser_parse_url with is_connect false (nodejs/http-parser 2.9.4, built
 * with its default HTTP_PARSER_STRICT), wants a host or a scheme from it, and for an IPv6 literal an IP address. What
 * that accepts is `scheme://[userinfo@]host[:port]` followed by an optional path, query and fragment: the scheme
 * letters only, the host alphanumerics, `.` and `-` (or a bracketed IPv6 literal), the port at most 65535, and the
 * rest without spaces, controls, DEL or bytes above 0x7e. A relative reference (`/page`) has neither host nor scheme.
 */
import { isIPv6 } from 'net';

const ALPHA = /^[A-Za-z]$/;
const DIGIT = /^[0-9]$/;
const HEX = /^[0-9A-Fa-f]$/;
const HOST_CHAR = /^[A-Za-z0-9.-]$/;
const USERINFO_CHAR = /^[A-Za-z0-9\-_.!~*'()%;:&=+$,]$/;
const ZONE_CHAR = /^[A-Za-z0-9%._~-]$/;

/** http_parser's IS_URL_CHAR in strict mode: 0x21-0x7e but `#` and `?`. */
function isUrlChar(c: string): boolean {
  const code = c.charCodeAt(0);
  return code >= 0x21 && code <= 0x7e && c !== '#' && c !== '?';
}

type UrlState = 'start' | 'schema' | 'schemaSlash' | 'schemaSlashSlash' | 'serverStart' | 'server' | 'serverWithAt'
  | 'path' | 'queryStart' | 'query' | 'fragmentStart' | 'fragment' | 'dead';

/** parse_url_char. */
function urlChar(s: UrlState, c: string): UrlState {
  if (c === ' ' || c === '\r' || c === '\n' || c === '\t' || c === '\f') return 'dead';
  switch (s) {
    case 'start':
      if (c === '/' || c === '*') return 'path';
      return ALPHA.test(c) ? 'schema' : 'dead';
    case 'schema':
      if (ALPHA.test(c)) return 'schema';
      return c === ':' ? 'schemaSlash' : 'dead';
    case 'schemaSlash':
      return c === '/' ? 'schemaSlashSlash' : 'dead';
    case 'schemaSlashSlash':
      return c === '/' ? 'serverStart' : 'dead';
    case 'serverWithAt':
    case 'serverStart':
    case 'server':
      if (s === 'serverWithAt' && c === '@') return 'dead';
      if (c === '/') return 'path';
      if (c === '?') return 'queryStart';
      if (c === '@') return 'serverWithAt';
      return USERINFO_CHAR.test(c) || c === '[' || c === ']' ? 'server' : 'dead';
    case 'path':
      if (isUrlChar(c)) return 'path';
      return c === '?' ? 'queryStart' : c === '#' ? 'fragmentStart' : 'dead';
    case 'queryStart':
    case 'query':
      if (isUrlChar(c) || c === '?') return 'query';
      return c === '#' ? 'fragmentStart' : 'dead';
    case 'fragmentStart':
      if (isUrlChar(c) || c === '?') return 'fragment';
      return c === '#' ? 'fragmentStart' : 'dead';
    case 'fragment':
      return isUrlChar(c) || c === '?' || c === '#' ? 'fragment' : 'dead';
    case 'dead':
      return 'dead';
  }
}

type HostState = 'userinfoStart' | 'userinfo' | 'hostStart' | 'host' | 'v6Start' | 'v6' | 'v6End' | 'zoneStart' | 'zone'
  | 'portStart' | 'port' | 'dead';

/** http_parse_host_char. */
function hostChar(s: HostState, c: string): HostState {
  switch (s) {
    case 'userinfoStart':
    case 'userinfo':
      if (c === '@') return 'hostStart';
      return USERINFO_CHAR.test(c) ? 'userinfo' : 'dead';
    case 'hostStart':
      if (c === '[') return 'v6Start';
      return HOST_CHAR.test(c) ? 'host' : 'dead';
    case 'host':
    case 'v6End':
      if (s === 'host' && HOST_CHAR.test(c)) return 'host';
      return c === ':' ? 'portStart' : 'dead';
    case 'v6':
    case 'v6Start':
      if (s === 'v6' && c === ']') return 'v6End';
      if (HEX.test(c) || c === ':' || c === '.') return 'v6';
      return s === 'v6' && c === '%' ? 'zoneStart' : 'dead';
    case 'zone':
    case 'zoneStart':
      if (s === 'zone' && c === ']') return 'v6End';
      return ZONE_CHAR.test(c) ? 'zone' : 'dead';
    case 'portStart':
    case 'port':
      return DIGIT.test(c) ? 'port' : 'dead';
    case 'dead':
      return 'dead';
  }
}

/** Whether http_parse_host takes the authority (`foundAt`: it holds an `@`), port range included. */
function hostValid(authority: string, foundAt: boolean): boolean {
  let s: HostState = foundAt ? 'userinfoStart' : 'hostStart';
  let port = '';
  for (const c of authority) {
    s = hostChar(s, c);
    if (s === 'dead') return false;
    if (s === 'port') port += c;
  }
  if (['hostStart', 'v6Start', 'v6', 'zoneStart', 'zone', 'portStart', 'userinfo', 'userinfoStart'].includes(s)) return false;
  return port === '' || Number(port) <= 0xffff;
}

/** What Utility::Url::initialize(value, false) found in an absolute URL it took, or null when it refused the value. */
interface EnvoyUrl {
  readonly userinfo: boolean;
  readonly fragment: boolean;
}

function envoyUrl(value: string): EnvoyUrl | null {
  let s: UrlState = 'start';
  let schema = false;
  let authority = '';
  let foundAt = false;
  let fragment = false;
  for (const c of value) {
    s = urlChar(s, c);
    if (s === 'dead') return null;
    if (s === 'schema') schema = true;
    // http_parser sets UF_FRAGMENT on a character after `#` (s_req_fragment), not on the `#` alone.
    if (s === 'fragment') fragment = true;
    if (s === 'server' || s === 'serverWithAt') {
      authority += c;
      if (s === 'serverWithAt') foundAt = true;
    }
  }
  // A scheme without a host fails http_parse_host, and Url::initialize wants a host or a scheme.
  if (!schema && authority === '') return null;
  if (!hostValid(authority, foundAt)) return null;
  // Url::initialize: a bracketed host must be an IP address (parseAuthority's is_ip_address_).
  const v6 = /(?:^|@)\[([^\]]*)\]/.exec(authority);
  if (v6 !== null && !isIPv6(v6[1])) return null;
  // UF_USERINFO is set on a character before the `@` (s_http_userinfo); `http://@host` has none.
  return { userinfo: foundAt && authority.indexOf('@') > 0, fragment };
}

/**
 * RFC 3986 query and fragment characters (`pchar / "/" / "?"`), Envoy's kUriQueryAndFragmentCharTable
 * (`source/common/http/character_set_validation.h`).
 */
const URI_QUERY_AND_FRAGMENT_CHAR = /^[A-Za-z0-9\-._~%!$&'()*+,;=:@/?]$/;

/**
 * Utility::isValidRefererValue (`source/common/http/utility.cc`, under the runtime guard
 * `envoy.reloadable_features.http_allow_partial_urls_in_referer`, a RUNTIME_GUARD on by default since Envoy 1.27 and
 * so in the 1.35/1.36 Istio 1.27/1.28 ship): an absolute URL Url::initialize takes, without a fragment or userinfo;
 * else a relative reference, with no `:` before its first `/` (RFC 3986 §3.3) and only query/fragment characters.
 */
export function isValidRefererValue(value: string): boolean {
  const url = envoyUrl(value);
  if (url !== null) return !(url.fragment || url.userinfo);
  let seenSlash = false;
  for (const c of value) {
    if (c === ':') {
      if (!seenSlash) return false;
    } else if (c === '/') {
      seenSlash = true;
    } else if (!URI_QUERY_AND_FRAGMENT_CHAR.test(c)) {
      return false;
    }
  }
  return true;
}
