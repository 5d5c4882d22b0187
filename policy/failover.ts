import * as path from "node:path";
import { describeSetting, PolicyRefusal, type ExecutionPolicy } from "./policy.js";

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
