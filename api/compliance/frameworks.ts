import type { CheckId } from "./checks.js";

export const FRAMEWORKS = ["gdpr", "hipaa", "iso27001", "soc2"] as const;
export type Framework = (typeof FRAMEWORKS)[number];

export interface Control {
  id: string;
  title: string;
  checks: CheckId[];
}

/** Each framework's backup-relevant controls, and the checks of the configuration that answer them. */
export const CONTROLS: Record<Framework, { name: string; controls: Control[] }> = {
  gdpr: {
    name: "GDPR (Regulation (EU) 2016/679)",
    controls: [
      { id: "Art. 32(1)(a)", title: "Encryption of personal data", checks: ["encryption", "key-rotation", "tls", "secrets-sealed"] },
      { id: "Art. 32(1)(b)", title: "Ongoing confidentiality, integrity, availability and resilience", checks: ["three-two-one", "immutable-copy", "admin-tokens"] },
      { id: "Art. 32(1)(c)", title: "Restore availability and access in a timely manner after an incident", checks: ["restore-verification", "three-two-one"] },
      { id: "Art. 32(1)(d)", title: "Regularly testing and evaluating the measures", checks: ["restore-verification", "audit-chain"] },
      { id: "Art. 5(1)(e)", title: "Storage limitation", checks: ["retention"] },
      { id: "Art. 5(2)", title: "Accountability", checks: ["audit-chain"] },
    ],
  },
  hipaa: {
    name: "HIPAA Security Rule (45 CFR 164)",
    controls: [
      { id: "164.308(a)(7)(ii)(A)", title: "Data backup plan", checks: ["three-two-one", "retention", "immutable-copy"] },
      { id: "164.308(a)(7)(ii)(B)", title: "Disaster recovery plan", checks: ["restore-verification", "three-two-one"] },
      { id: "164.308(a)(7)(ii)(D)", title: "Testing and revision procedures", checks: ["restore-verification"] },
      { id: "164.308(a)(5)(ii)(D)", title: "Password management", checks: ["secrets-sealed", "admin-tokens"] },
      { id: "164.312(a)(2)(iv)", title: "Encryption and decryption", checks: ["encryption", "key-rotation"] },
      { id: "164.312(b)", title: "Audit controls", checks: ["audit-chain"] },
      { id: "164.312(c)(1)", title: "Integrity", checks: ["immutable-copy", "audit-chain"] },
      { id: "164.312(e)(1)", title: "Transmission security", checks: ["tls"] },
    ],
  },
  iso27001: {
    name: "ISO/IEC 27001:2022 Annex A",
    controls: [
      { id: "A.8.13", title: "Information backup", checks: ["three-two-one", "retention", "restore-verification", "immutable-copy"] },
      { id: "A.8.24", title: "Use of cryptography", checks: ["encryption", "key-rotation", "tls"] },
      { id: "A.8.15", title: "Logging", checks: ["audit-chain"] },
      { id: "A.5.17", title: "Authentication information", checks: ["admin-tokens", "secrets-sealed"] },
      { id: "A.8.10", title: "Information deletion", checks: ["retention"] },
    ],
  },
  soc2: {
    name: "SOC 2 Trust Services Criteria (2017)",
    controls: [
      { id: "CC6.1", title: "Logical access security, encryption and key management", checks: ["admin-tokens", "secrets-sealed", "encryption", "key-rotation"] },
      { id: "CC6.7", title: "Restricted transmission of information", checks: ["tls"] },
      { id: "CC7.2", title: "Monitoring of system components for anomalies", checks: ["audit-chain"] },
      { id: "A1.2", title: "Backup and recovery infrastructure", checks: ["three-two-one", "immutable-copy", "retention"] },
      { id: "A1.3", title: "Testing of recovery plan procedures", checks: ["restore-verification"] },
    ],
  },
};
