import * as path from "node:path";
import { realPath } from "./paths.js";
import { describeSetting, PolicyRefusal, within, type ExecutionPolicy } from "./policy.js";

/**
 * Why the policy refuses to run `program` as a failover hook (fencing or
 * cut-over): only the programs an operator listed in hookCommands run, named by
 * the same absolute path, without a shell; their arguments are the caller's.
 */
export function hookRefusal(policy: ExecutionPolicy, program: string): PolicyRefusal | undefined {
  if (!path.isAbsolute(program)) return new PolicyRefusal("hookCommands", `the hook ${program} is not an absolute path; give the program's absolute path (it runs without a shell) and list it in the hook commands (${describeSetting(policy, "hookCommands")})`);
  if (!policy.hookCommands.includes(path.resolve(program))) return new PolicyRefusal("hookCommands", `the hook ${program} is not one of the hook commands the execution policy allows (${describeSetting(policy, "hookCommands")}); add its absolute path there to let failovers run it`);
  return undefined;
}

/**
 * Why the policy refuses a failover to act on `p` (the old primary's data
 * directory, the standby's, the connection switch's configuration file): it must
 * lie in failoverPaths, as written and once links are followed.
 */
export async function failoverPathRefusal(policy: ExecutionPolicy, what: string, p: string, real = true): Promise<PolicyRefusal | undefined> {
  const refuse = (shown: string) => new PolicyRefusal("failoverPaths", `${what} ${shown} is not under the paths failovers may act on (${describeSetting(policy, "failoverPaths")}); add it there to allow it`);
  if (!path.isAbsolute(p)) return new PolicyRefusal("failoverPaths", `${what} ${p} is not an absolute path; give it as one`);
  const resolved = path.resolve(p);
  if (!policy.failoverPaths.some((root) => within(resolved, root))) return refuse(p);
  if (real) {
    const r = await realPath(resolved);
    const roots = await Promise.all(policy.failoverPaths.map(realPath));
    if (!roots.some((root) => within(r, root))) return refuse(`${p} (really ${r})`);
  }
  return undefined;
}
