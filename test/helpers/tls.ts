// A throw-away self-signed server certificate for a test node's WSS listener, made with the
// system openssl into the node's run dir (removed with it). Clients trust it through `ca`.
import { execFileSync } from "node:child_process";
import { readFileSync } from "node:fs";
import { join } from "node:path";

export interface TestCert {
  certFile: string;
  keyFile: string;
  /** The certificate in PEM: pass it as `ca` to a client so it verifies the node. */
  certPem: string;
}

/** EC P-256 (fast to make), valid one day, with the given IP addresses as subjectAltName. */
export function makeSelfSignedCert(dir: string, ips: readonly string[]): TestCert {
  const certFile = join(dir, "kwc-test-cert.pem");
  const keyFile = join(dir, "kwc-test-key.pem");
  const san = ips.map((ip) => `IP:${ip}`).join(",");
  execFileSync(
    "openssl",
    [
      "req",
      "-x509",
      "-newkey",
      "ec",
      "-pkeyopt",
      "ec_paramgen_curve:prime256v1",
      "-nodes",
      "-keyout",
      keyFile,
      "-out",
      certFile,
      "-days",
      "1",
      "-subj",
      "/CN=kwc-test-node",
      "-addext",
      `subjectAltName=${san}`,
    ],
    { stdio: ["ignore", "ignore", "pipe"] },
  );
  return { certFile, keyFile, certPem: readFileSync(certFile, "utf8") };
}
