import { lookup as dnsLookup, type LookupAddress, type LookupAllOptions, type LookupOneOptions } from "node:dns";
import { promises as dns } from "node:dns";
import { isIP } from "node:net";
import { parseRepositoryUrl, type Destination, type Env } from "../backends/url.js";
import { classifyAddress, inCidr, ipBytes, parseCidr, unwrapIPv4, type AddressClass } from "./addresses.js";
import { describeSetting, PolicyRefusal, type ExecutionPolicy } from "./policy.js";
import { pathRefusal, realPathRefusal } from "./paths.js";

/**
 * The host names a destination connects to, given the variables its backend
 * reads (its credentials over the process's environment when allowed). AWS S3
 * is named by its global endpoint: the SDK picks a regional one, which the
 * connection-time check (policyLookup) judges.
 */
export function destinationHosts(dest: Destination, env: Env): string[] {
  switch (dest.type) {
    case "local":
      return [];
    case "s3":
      return [dest.endpoint ? hostOf(dest.endpoint) : "s3.amazonaws.com"];
    case "sftp":
      return [dest.host.replace(/^\[|\]$/g, "")];
    case "gs":
      return [env.CAIRN_GCS_ENDPOINT ? hostOf(env.CAIRN_GCS_ENDPOINT) : "storage.googleapis.com"];
    case "azure":
      return [azureHost(env)];
  }
}

function hostOf(url: string): string {
  try {
    return new URL(url).hostname.replace(/^\[|\]$/g, "");
  } catch {
    return url;
  }
}

/** The blob endpoint host an Azure connection string or account names. */
function azureHost(env: Env): string {
  const parts = new Map(
    (env.AZURE_STORAGE_CONNECTION_STRING ?? "")
      .split(";")
      .map((kv) => kv.split(/=(.*)/s))
      .filter(([k]) => k)
      .map(([k, v]) => [k.trim().toLowerCase(), (v ?? "").trim()]),
  );
  if (parts.get("usedevelopmentstorage") === "true") return "127.0.0.1";
  if (parts.get("blobendpoint")) return hostOf(parts.get("blobendpoint")!);
  const account = parts.get("accountname") ?? env.AZURE_STORAGE_ACCOUNT ?? "";
  return `${account}.blob.${parts.get("endpointsuffix") ?? "core.windows.net"}`;
}

/** How the host rules name a host: explicitly (by name or block: it may then be private or loopback), by `*` (public addresses only), or not at all. */
function hostMatch(policy: ExecutionPolicy, host: string): "explicit" | "any" | undefined {
  const name = host.toLowerCase().replace(/\.$/, "");
  const bytes = ipBytes(name);
  for (const rule of policy.destinationHosts) {
    if (rule === "*") continue;
    const block = parseCidr(rule);
    if (block ? bytes !== undefined && inCidr(unwrapIPv4(bytes), block) : rule.startsWith("*.") ? name.endsWith(rule.slice(1)) : name === rule) return "explicit";
  }
  return policy.destinationHosts.includes("*") ? "any" : undefined;
}

const NEVER: Partial<Record<AddressClass, string>> = {
  metadata: "a cloud metadata address (it hands out the machine's own credentials)",
  "link-local": "a link-local address",
  unspecified: "an unspecified address (it reaches this machine)",
  multicast: "a multicast address",
  reserved: "a reserved address",
};

/**
 * Why the policy refuses a connection to `address` on behalf of `host` (the name
 * the destination gave, or the address itself), or undefined when it allows it.
 * Metadata and link-local addresses are refused whatever the policy says.
 */
export function addressRefusal(policy: ExecutionPolicy, host: string, address: string): PolicyRefusal | undefined {
  const cls = classifyAddress(address);
  if (!cls) return new PolicyRefusal("never", `${host} gave ${address}, which is not an IP address`);
  const via = host === address ? address : `${host} (${address})`;
  const never = NEVER[cls];
  if (never) return new PolicyRefusal("never", `destination ${via} is ${never}; no repository may use it, whatever the policy says`);
  const byHost = hostMatch(policy, host);
  const explicit = byHost === "explicit" || hostMatch(policy, address) === "explicit";
  if (cls === "loopback" && !explicit && !policy.allowLoopback) {
    return new PolicyRefusal(
      "allowLoopback",
      `destination ${via} is a loopback address, refused (${describeSetting(policy, "allowLoopback")}); set CAIRN_ALLOW_LOOPBACK=true, or list the host in CAIRN_DESTINATION_HOSTS, to allow it`,
    );
  }
  if (cls === "private" && !explicit && !policy.allowPrivateNetworks) {
    return new PolicyRefusal(
      "allowPrivateNetworks",
      `destination ${via} is a private network address, refused (${describeSetting(policy, "allowPrivateNetworks")}); set CAIRN_ALLOW_PRIVATE_NETWORKS=true, or list the host in CAIRN_DESTINATION_HOSTS, to allow it`,
    );
  }
  if (cls === "public" && !explicit && byHost !== "any" && hostMatch(policy, address) !== "any") {
    return new PolicyRefusal("destinationHosts", `destination ${via} is not among the allowed hosts (${describeSetting(policy, "destinationHosts")}); add it there to allow it`);
  }
  return undefined;
}

/**
 * Why the policy refuses a repository location, or undefined. Checks the kind,
 * then a local path against the repository roots (`realPaths`: following links,
 * as workers do), or every address each host resolves to, before any connection
 * is opened. A host that does not resolve is left to the connection to report.
 */
export async function destinationRefusal(policy: ExecutionPolicy, url: string, env: Env, options: { realPaths: boolean }): Promise<PolicyRefusal | undefined> {
  const dest = parseRepositoryUrl(url);
  if (!policy.destinationKinds.includes(dest.type)) {
    return new PolicyRefusal("destinationKinds", `${dest.type}: destinations are not allowed (${describeSetting(policy, "destinationKinds")}); add ${dest.type} there to allow them`);
  }
  if (dest.type === "local") return options.realPaths ? realPathRefusal(policy, "repository", dest.path) : pathRefusal(policy, "repository", dest.path);
  for (const host of destinationHosts(dest, env)) {
    const refusal = await hostRefusal(policy, host);
    if (refusal) return refusal;
  }
  return undefined;
}

/**
 * Why the policy refuses connections to `host` (a name or an address), judging
 * every address it resolves to; undefined when it allows them. A name that does
 * not resolve is left to the connection to report, unless the host rules name
 * no such host.
 */
export async function hostRefusal(policy: ExecutionPolicy, host: string): Promise<PolicyRefusal | undefined> {
  const addresses = isIP(host) ? [host] : await dns.lookup(host, { all: true, verbatim: true }).then((found) => found.map((a) => a.address), () => []);
  if (!isIP(host) && hostMatch(policy, host) === undefined && addresses.length === 0) {
    return new PolicyRefusal("destinationHosts", `destination ${host} is not among the allowed hosts (${describeSetting(policy, "destinationHosts")}); add it there to allow it`);
  }
  for (const address of addresses) {
    const refusal = addressRefusal(policy, host, address);
    if (refusal) return refusal;
  }
  return undefined;
}

type LookupCallback = (err: NodeJS.ErrnoException | null, address: string | LookupAddress[], family?: number) => void;

/** The error a refused connection fails with: a permanent one (backends retry only transient codes). */
export const POLICY_ERROR_CODE = "ECAIRNPOLICY";

/**
 * A `lookup` for net.connect and http(s).Agent that resolves as dns.lookup does
 * and refuses, before the socket connects, any address the policy refuses. It
 * judges the addresses the connection really uses, so a name that resolved to a
 * public address when checked and to an internal one now is still refused.
 * (Connections to an IP literal skip lookup: destinationRefusal judges those.)
 */
export function policyLookup(policy: ExecutionPolicy) {
  return (hostname: string, options: LookupOneOptions | LookupAllOptions | number, callback: LookupCallback): void => {
    const opts = typeof options === "number" ? { family: options } : options;
    dnsLookup(hostname, { ...opts, all: true }, (err, addresses) => {
      if (err) return callback(err, "");
      for (const { address } of addresses) {
        const refusal = addressRefusal(policy, hostname, address);
        if (refusal) return callback(Object.assign(new Error(refusal.message), { code: POLICY_ERROR_CODE }), "");
      }
      if ((opts as LookupAllOptions).all) return callback(null, addresses);
      callback(null, addresses[0].address, addresses[0].family);
    });
  };
}
