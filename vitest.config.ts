import { defineConfig } from "vitest/config";

// Five projects, all run by `npm test`:
//   unit        pure code and adapters with mocked AWS clients (fast, parallel)
//   infra       CDK template assertions, cdk-nag, synth
//   integration real Kamailio 5.6.3, PostgreSQL and MariaDB (the project's own instances)
//   e2e         the whole local pipeline (`npm start`'s stack)
//   browser     headless Chromium tabs running JsSIP against the pipeline, one browser file at a time
// The projects run one after another (groupOrder): real-process projects share 2 cores with
// Kamailio and the databases, so they also run few files at once.
// Every worker runs on this process's Node: refuse anything but the Node 24 the Lambdas run on
// (scripts/test.sh checks the same before tsc, this catches a direct `vitest` on another Node).
if (!process.versions.node.startsWith("24.")) {
  throw new Error(
    `vitest: Node ${process.versions.node} is running; the project runs on Node 24 (run it through npm: npm test, npx vitest)`,
  );
}

export default defineConfig({
  test: {
    projects: [
      {
        test: {
          name: "unit",
          include: ["test/unit/**/*.test.ts"],
          testTimeout: 20_000,
          sequence: { groupOrder: 0 },
        },
      },
      {
        test: {
          name: "infra",
          include: ["test/infra/**/*.test.ts"],
          testTimeout: 180_000,
          hookTimeout: 180_000,
          sequence: { groupOrder: 1 },
        },
      },
      {
        test: {
          name: "integration",
          include: ["test/integration/**/*.test.ts"],
          globalSetup: ["test/helpers/global-setup.ts"],
          testTimeout: 60_000,
          hookTimeout: 120_000,
          maxWorkers: 2,
          sequence: { groupOrder: 2 },
        },
      },
      {
        test: {
          name: "e2e",
          include: ["test/e2e/**/*.test.ts"],
          globalSetup: ["test/helpers/global-setup.ts"],
          testTimeout: 120_000,
          hookTimeout: 180_000,
          maxWorkers: 1,
          sequence: { groupOrder: 3 },
        },
      },
      {
        test: {
          name: "browser",
          include: ["test/browser/**/*.test.ts"],
          globalSetup: ["test/helpers/global-setup.ts"],
          testTimeout: 60_000,
          hookTimeout: 60_000,
          maxWorkers: 1,
          sequence: { groupOrder: 4 },
        },
      },
    ],
  },
});
