import { readFileSync } from "node:fs";
import type { Command } from "commander";
import { DEFAULT_ARGON2ID, DEFAULT_SCRYPT, type KdfParams } from "../engine/crypto.js";
import { CairnError } from "../engine/errors.js";
import { addVerifiedKey, changePassword, findKey, listKeys, removeKey } from "../engine/keys.js";
import { globals, output, prompt, withRepository } from "./common.js";

interface NewKeyFlags {
  newPasswordFile?: string;
  kdf?: string;
}

export function register(program: Command): void {
  const key = program
    .command("key")
    .description("manage the passwords (key files) that open the repository, and rotate the data key");

  key
    .command("list")
    .description("list key files (* marks the one this password opened)")
    .action(async (_o: unknown, cmd: Command) => {
      const opts = globals(cmd);
      const keys = await withRepository(opts, "none", "key list", (repo) => listKeys(repo));
      output(opts, keys, () => {
        const rows = keys.map((k) => `${k.current ? "*" : " "} ${k.id.slice(0, 8)}  ${k.created.replace("T", " ").slice(0, 19)}  ${k.host.padEnd(16)}  ${k.username.padEnd(10)}  ${k.kdf.name}`);
        return [`  ID        Created              Host              User        KDF`, ...rows].join("\n");
      });
    });

  newKeyOptions(key.command("add").description("add a key file for another password (no data is rewritten)")).action(async (o: NewKeyFlags, cmd: Command) => {
    const opts = globals(cmd);
    const kdf = kdfFor(o.kdf ?? "scrypt");
    const id = await withRepository(opts, "none", "key add", async (repo) => addVerifiedKey(repo, await readNewPassword(o), kdf));
    output(opts, { id, kdf: kdf.name }, () => `added key ${id.slice(0, 8)} (${kdf.name})`);
  });

  key
    .command("remove")
    .description("remove a key file; its password no longer opens the repository")
    .argument("<id>", 'key id or a unique prefix of one, from "cairn key list"')
    .action(async (prefix: string, _o: unknown, cmd: Command) => {
      const opts = globals(cmd);
      // Exclusive: two sessions removing each other's key at once could leave no key at all.
      const id = await withRepository(opts, "exclusive", "key remove", async (repo) => {
        const found = await findKey(repo, prefix);
        await removeKey(repo, found.id);
        return found.id;
      });
      output(opts, { removed: id }, () => `removed key ${id.slice(0, 8)}`);
    });

  newKeyOptions(key.command("passwd").description("change the password: add a key for the new one, then remove the key that opened the repository")).action(
    async (o: NewKeyFlags, cmd: Command) => {
      const opts = globals(cmd);
      const requested = o.kdf ? kdfFor(o.kdf) : undefined;
      const result = await withRepository(opts, "exclusive", "key passwd", async (repo) => {
        // Keep the current key's KDF (and its cost) unless another one is asked for.
        const kdf = requested ?? (await listKeys(repo)).find((k) => k.current)?.kdf ?? DEFAULT_SCRYPT;
        return changePassword(repo, await readNewPassword(o), kdf);
      });
      output(opts, result, () => `password changed: added key ${result.added.slice(0, 8)}, removed key ${result.removed.slice(0, 8)}`);
    },
  );

  key
    .command("rotate")
    .description("start a new data-key epoch: new data uses a fresh key, existing data stays readable and is not rewritten")
    .action(async (_o: unknown, cmd: Command) => {
      const opts = globals(cmd);
      // Exclusive: two rotations at once would each create a different key for the same epoch.
      const epoch = await withRepository(opts, "exclusive", "key rotate", (repo) => repo.rotateDataKey());
      output(opts, { epoch }, () => `data key rotated: new data is written under epoch ${epoch}; older data stays readable with every password`);
    });
}

function newKeyOptions(cmd: Command): Command {
  return cmd
    .option("--new-password-file <file>", "read the new password from a file (or CAIRN_NEW_PASSWORD, or a prompt on a terminal)")
    .option("--kdf <name>", "key derivation for the new key: scrypt or argon2id");
}

function kdfFor(name: string): KdfParams {
  if (name === "scrypt") return DEFAULT_SCRYPT;
  if (name === "argon2id") return DEFAULT_ARGON2ID;
  throw new CairnError(`--kdf must be scrypt or argon2id, got ${name}`);
}

/** The new password, from --new-password-file, CAIRN_NEW_PASSWORD, or a terminal prompt asked twice. */
async function readNewPassword(o: NewKeyFlags): Promise<string> {
  let password: string;
  if (o.newPasswordFile) {
    try {
      password = readFileSync(o.newPasswordFile, "utf8").replace(/\r?\n$/, "");
    } catch (err) {
      throw new CairnError(`cannot read the new password file ${o.newPasswordFile}: ${(err as Error).message}`);
    }
  } else if (process.env.CAIRN_NEW_PASSWORD !== undefined) {
    password = process.env.CAIRN_NEW_PASSWORD;
  } else if (process.stdin.isTTY) {
    password = await prompt("enter new password: ");
    if ((await prompt("enter new password again: ")) !== password) throw new CairnError("the new passwords do not match; try again");
  } else {
    throw new CairnError("no new password given: use --new-password-file FILE or set CAIRN_NEW_PASSWORD");
  }
  if (password.length === 0) throw new CairnError("an empty password protects nothing; choose a non-empty new password");
  return password;
}
