// Starts the stack once for the run; workers find it through the environment.
import { startStack } from './harness/stack.js';

export default async function globalSetup() {
  const stack = await startStack();
  process.env.E2E_BASE_URL = stack.baseURL;
  process.env.E2E_MAIL_DIR = stack.mailDir;
  process.env.E2E_STACK_ENV = JSON.stringify(stack.env);
  process.env.E2E_SERVER_PID = String(stack.serverPid);
  return () => stack.stop();
}
