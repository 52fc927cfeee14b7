// Kamailio 6.0.1 (Debian 13) as a KamailioRuntime: the trixie chroot that scripts/kamailio-v6.sh
// builds under $KWC_STATE_DIR/kamailio-6.0.1/root (the trixie binary needs GLIBC_2.38, so it
// cannot run on Debian 12 directly). Tests pass `runtime: kamailioV6()` to startKamailio().
//
// Each node runs in its own private mount namespace (`unshare --mount`): the node's run dir (cfg
// copy, pid file, ctl socket, TLS files) is bind-mounted at /run/kwc inside the chroot, and every
// run-dir path in the arguments is rewritten to it. The mount exists only in that namespace, so
// nodes never see each other's run dirs, and it disappears with the node's last process, however
// it ends (SIGTERM, SIGKILL, a failed start): nothing is ever left mounted on the host.
// `unshare`, `sh` and `unshare --root` all exec, so the spawned pid is Kamailio's main pid.
import { copyFileSync, existsSync, mkdirSync, readdirSync, readFileSync } from "node:fs";
import { basename, dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import type { KamailioRuntime } from "./kamailio.ts";

/** Where the run dir appears inside the chroot (created by scripts/kamailio-v6.sh). */
export const RUN_DIR_IN_CHROOT = "/run/kwc";

const REPO = fileURLToPath(new URL("../..", import.meta.url));

/** The chroot scripts/kamailio-v6.sh builds (same KWC_STATE_DIR default as scripts/env.sh). */
export function kamailioV6Root(): string {
  const stateDir = process.env.KWC_STATE_DIR ?? join(REPO, ".state");
  return join(stateDir, "kamailio-6.0.1", "root");
}

/** The Debian version installed in the chroot, e.g. "6.0.1-1+deb13u2"; throws with the fix if not built. */
export function kamailioV6Package(root = kamailioV6Root()): string {
  const stamp = join(root, ".kwc-kamailio-v6");
  if (
    !existsSync(stamp) ||
    !existsSync(join(root, "usr/sbin/kamailio")) ||
    !existsSync(join(root, RUN_DIR_IN_CHROOT))
  )
    throw new Error(
      `no Kamailio 6.0.1 chroot at ${root}: run \`bash scripts/kamailio-v6.sh ensure\` (scripts/setup.sh does, as root)`,
    );
  // line 1: the Debian version, line 2: the package list (scripts/kamailio-v6.sh)
  return readFileSync(stamp, "utf8").split("\n")[0]?.trim() ?? "";
}

// $1 run dir, $2 chroot, then Kamailio's arguments. The mount happens inside the new namespace.
const LAUNCH = [
  'run="$1"; root="$2"; shift 2',
  `/bin/mount --bind "$run" "$root${RUN_DIR_IN_CHROOT}" || exit 97`,
  `exec /usr/bin/unshare --root="$root" --wd=${RUN_DIR_IN_CHROOT}/cfg /usr/sbin/kamailio "$@"`,
].join("\n");

/** Kamailio 6.0.1 from the trixie chroot; checks the chroot is there when created. */
export function kamailioV6(root = kamailioV6Root()): KamailioRuntime {
  const pkg = kamailioV6Package(root);
  // `unshare --propagation private` remounts "/" private; that fails where "/" is no mount point.
  if (!mountPoints().includes("/"))
    throw new Error(
      "the Kamailio 6.0.1 runtime needs a private mount namespace, but this process's root is not a mount point (inside a plain chroot?): bind-mount that chroot onto itself before entering it",
    );
  return {
    name: `chroot ${pkg}`,
    version: "6.0.1",
    command(args, { cfgPath, runDir }) {
      // The cfg and its includes go into the run dir: the one folder the chroot sees.
      const cfgDir = join(runDir, "cfg");
      mkdirSync(cfgDir, { recursive: true });
      const shippedDir = dirname(cfgPath);
      for (const f of readdirSync(shippedDir))
        if (f.endsWith(".cfg")) copyFileSync(join(shippedDir, f), join(cfgDir, f));
      const inChroot = `${RUN_DIR_IN_CHROOT}/cfg/${basename(cfgPath)}`;
      const argv = args.map((a) => (a === cfgPath ? inChroot : a.replaceAll(runDir, RUN_DIR_IN_CHROOT)));
      return {
        file: "/usr/bin/unshare",
        argv: [
          "--mount",
          "--propagation",
          "private",
          "/bin/sh",
          "-c",
          LAUNCH,
          "kwc-kamailio-v6",
          runDir,
          root,
          ...argv,
        ],
      };
    },
  };
}

/** This process's mount points, relative to its root (/proc/self/mountinfo). */
function mountPoints(): string[] {
  return readFileSync("/proc/self/mountinfo", "utf8")
    .split("\n")
    .map((line) => line.split(" ")[4] ?? "")
    .filter((mountPoint) => mountPoint !== "");
}

/** Host mount points under `dir`: must stay empty, whatever the nodes do. */
export function hostMountsUnder(dir: string): string[] {
  return mountPoints().filter((mountPoint) => mountPoint === dir || mountPoint.startsWith(`${dir}/`));
}
