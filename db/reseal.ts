import { eq } from "drizzle-orm";
import { SecretBox } from "../engine/secret-box.js";
import type { Catalog } from "./client.js";
import { auditSigningKeys, plans, repositories } from "./schema.js";

export interface ResealReport {
  /** Sealed values rewritten under the box's newest key. */
  resealed: number;
  /** Values that were sealed under it already. */
  current: number;
}

/**
 * Re-seals every sealed value of the catalog (repository passwords and
 * credentials, plans' notification secrets, the audit signing key) under the box's newest key, in one
 * transaction: after a rotation, nothing in the catalog needs an older key.
 */
export async function resealCatalog(catalog: Catalog, box: SecretBox): Promise<ResealReport> {
  const report: ResealReport = { resealed: 0, current: 0 };
  const again = (sealed: string): string => {
    if (SecretBox.sealedEpoch(sealed) === box.epoch) {
      report.current++;
      return sealed;
    }
    report.resealed++;
    return box.seal(box.open(sealed));
  };
  await catalog.transaction(async (tx) => {
    for (const repo of await tx.select().from(repositories)) {
      await tx
        .update(repositories)
        .set({ sealedPassword: again(repo.sealedPassword), sealedCredentials: repo.sealedCredentials === null ? null : again(repo.sealedCredentials) })
        .where(eq(repositories.id, repo.id));
    }
    for (const plan of await tx.select({ id: plans.id, notifications: plans.notifications }).from(plans)) {
      if (!plan.notifications?.length) continue;
      const notifications = plan.notifications.map((n) =>
        n.type === "webhook" && n.sealedSecret ? { ...n, sealedSecret: again(n.sealedSecret) } : n.type === "slack" ? { ...n, sealedUrl: again(n.sealedUrl) } : n,
      );
      await tx.update(plans).set({ notifications }).where(eq(plans.id, plan.id));
    }
    for (const key of await tx.select().from(auditSigningKeys)) {
      await tx.update(auditSigningKeys).set({ sealedPrivateKey: again(key.sealedPrivateKey) }).where(eq(auditSigningKeys.id, key.id));
    }
  });
  return report;
}
