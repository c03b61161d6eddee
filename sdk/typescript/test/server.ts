// A real `callhub serve` child process on a free port with a SQLite data dir of
// its own, and accounts made with `callhub user add`, as an operator would.
import { type ChildProcess, execFileSync, spawn } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createInterface } from "node:readline";

import type { Frame, Notifications, UserInfo } from "../src/index.js";

export const PASSWORD = "correct horse battery";

function binary(): string {
  const bin = process.env.CALLHUB_BIN;
  if (!bin) {
    throw new Error("CALLHUB_BIN must name the callhub binary (cargo build -p callhub-server; .ci/sdk.sh sets it)");
  }
  return bin;
}

export interface ServerOptions {
  /** Reuse a data dir (a restart); a new temporary one by default. */
  dataDir?: string;
  /** 0 (the default) picks a free port. */
  port?: number;
  env?: Record<string, string>;
}

export class TestServer {
  private constructor(
    private readonly child: ChildProcess,
    readonly url: string,
    readonly port: number,
    readonly dataDir: string,
    private readonly env: NodeJS.ProcessEnv,
  ) {}

  static async start(options: ServerOptions = {}): Promise<TestServer> {
    const dataDir = options.dataDir ?? mkdtempSync(join(tmpdir(), "callhub-sdk-"));
    const env: NodeJS.ProcessEnv = {
      ...process.env,
      CALLHUB_DATA_DIR: dataDir,
      CALLHUB_DATABASE_URL: `sqlite://${join(dataDir, "callhub.db")}`,
      CALLHUB_LISTEN: `127.0.0.1:${options.port ?? 0}`,
      CALLHUB_SFU_UDP: "127.0.0.1:0",
      CALLHUB_LOG: "info",
      CALLHUB_LOG_FORMAT: "json",
      ...options.env,
    };
    const child = spawn(binary(), ["serve"], { env, stdio: ["ignore", "ignore", "pipe"] });
    // The start line names the address: the JSON log says which port 0 became.
    const addr = await new Promise<string>((resolve, reject) => {
      createInterface({ input: child.stderr! }).on("line", (line) => {
        if (process.env.TEST_LOG) {
          console.error(line);
        }
        try {
          const entry = JSON.parse(line) as { message?: string; addr?: string };
          if (entry.message === "callhub listening" && entry.addr) {
            resolve(entry.addr);
          }
        } catch {
          // not a log line of ours
        }
      });
      child.once("exit", (code) => reject(new Error(`callhub serve exited with ${code} before listening`)));
    });
    const port = Number(addr.split(":").pop());
    return new TestServer(child, `http://${addr}`, port, dataDir, env);
  }

  /** Makes an account with `callhub user add`; its UserInfo. */
  userAdd(userId: string, roles: string[] = ["user"], domain = "ubimax"): UserInfo {
    const args = ["user", "add", "--domain", domain, "--user-id", userId, "--display-name", userId.toUpperCase()];
    args.push("--email", `${userId}@example.org`, "--password-stdin");
    for (const role of roles) {
      args.push("--role", role);
    }
    const out = execFileSync(binary(), args, { env: this.env, input: PASSWORD, encoding: "utf8" });
    return JSON.parse(out.trim().split("\n").pop()!) as UserInfo;
  }

  /** Stops the server (SIGTERM) and waits for it to exit; the data dir stays. */
  async stop(): Promise<void> {
    if (this.child.exitCode !== null) {
      return;
    }
    const exited = new Promise((resolve) => this.child.once("exit", resolve));
    this.child.kill("SIGTERM");
    await exited;
  }

  async dispose(): Promise<void> {
    await this.stop();
    rmSync(this.dataDir, { recursive: true, force: true });
  }
}

/** A contact as the seed's connector writes one. */
export function contact(u: UserInfo) {
  return {
    displayName: u.displayName,
    domain: u.domain,
    email: u.email ?? null,
    phoneNumber: "",
    userDbId: u.userDbId,
    userId: u.userId,
  };
}

/** Reads a notification stream in the background into `frames`. */
export function collect(notes: Notifications): Frame[] {
  const frames: Frame[] = [];
  void (async () => {
    for await (const frame of notes) {
      frames.push(frame);
    }
  })();
  return frames;
}

/** Waits until `check` holds, for at most `ms`. */
export async function eventually(what: string, check: () => boolean, ms = 10_000): Promise<void> {
  const deadline = Date.now() + ms;
  while (!check()) {
    if (Date.now() > deadline) {
      throw new Error(`not within ${ms} ms: ${what}`);
    }
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}

/** The `incomingCall` frames of one call among `frames`. */
export function popups(frames: Frame[], callId: string): Frame[] {
  return frames.filter((f) => f.type === "incomingCall" && (f.call as { callId?: string })?.callId === callId);
}
