import type { Command } from "commander";
import { parseCompression, formatCompression } from "../engine/compression.js";
import { DEFAULT_ARGON2ID, DEFAULT_SCRYPT, type CipherName } from "../engine/crypto.js";
import { CairnError } from "../engine/errors.js";
import { Repository } from "../engine/repository.js";
import { fromOptions, openFromRepository, type FromOptions } from "./cmd_copy.js";
import { backendFor, globals, output, readPassword } from "./common.js";

export function register(program: Command): void {
  fromOptions(program
    .command("init")
    .description("create a new repository")
    .option("--kdf <name>", "password key derivation: scrypt or argon2id", "scrypt")
    .option("--cipher <name>", "aes-256-gcm or chacha20-poly1305", "aes-256-gcm")
    .option("--compression <spec>", "default compression: zstd[:level], gzip[:1-9], brotli[:level], none", "zstd:3")
    .option("--pack-size <MiB>", "target pack file size in MiB (4-128); larger packs mean fewer objects on remote storage", "16")
    .option("--object-lock-days <n>", "s3: repositories: create the bucket with Object Lock, so every object but lock files stays undeletable for n days (CAIRN_S3_OBJECT_LOCK_DAYS)")
    .option("--object-lock-mode <mode>", "with --object-lock-days: governance (users with a bypass permission may delete) or compliance (nobody may)", "governance")
    .option("--copy-chunker-params", "take the chunker parameters and blob id key of --from-repo, so \"cairn copy\" from it sends trees as they are and deduplicates against it"))
    .action(async (o: { kdf: string; cipher: string; compression: string; packSize: string; copyChunkerParams?: boolean; objectLockDays?: string; objectLockMode: string } & FromOptions, cmd: Command) => {
      const opts = globals(cmd);
      if (o.kdf !== "scrypt" && o.kdf !== "argon2id") throw new CairnError(`--kdf must be scrypt or argon2id, got ${o.kdf}`);
      if (o.cipher !== "aes-256-gcm" && o.cipher !== "chacha20-poly1305") throw new CairnError(`--cipher must be aes-256-gcm or chacha20-poly1305, got ${o.cipher}`);
      const compression = formatCompression(parseCompression(o.compression));
      const packMiB = Number(o.packSize);
      if (!Number.isInteger(packMiB) || packMiB < 4 || packMiB > 128) throw new CairnError(`--pack-size must be a whole number of MiB from 4 to 128, got ${o.packSize}`);
      if (o.objectLockDays !== undefined) Object.assign(process.env, { CAIRN_S3_OBJECT_LOCK_DAYS: o.objectLockDays, CAIRN_S3_OBJECT_LOCK_MODE: o.objectLockMode });
      const backend = await backendFor(opts.repo);
      if (process.env.CAIRN_S3_OBJECT_LOCK_DAYS && !backend.objectLock?.()) throw new CairnError(`object lock needs an s3: repository, and ${backend.location} is not one; leave --object-lock-days out`);
      const password = await readPassword(opts, "new repository password", true);
      if (password.length === 0) throw new CairnError("an empty password protects nothing; choose a password");
      if (o.fromRepo && !o.copyChunkerParams) throw new CairnError("--from-repo is only used with --copy-chunker-params here; add it, or leave --from-repo out");
      const shared = o.copyChunkerParams ? await sharedParams(o) : undefined;
      await backend.ensureContainer?.();
      const repo = await Repository.init(backend, password, {
        ...shared,
        kdf: o.kdf === "argon2id" ? DEFAULT_ARGON2ID : DEFAULT_SCRYPT,
        cipher: o.cipher as CipherName,
        compression,
        packSize: packMiB * 1024 * 1024,
      });
      await repo.close();
      await backend.close?.();
      output(opts, { id: repo.config.id, location: backend.location }, () => `created repository ${repo.config.id.slice(0, 10)} at ${backend.location}\n\nKeep the password safe: without it the data cannot be read.`);
    });
}

/** The chunker parameters and blob id key of the source repository, which the new one shares. */
async function sharedParams(o: FromOptions) {
  const from = await openFromRepository(o);
  await from.close();
  return { chunker: from.config.chunker, idKey: from.idKey };
}
